/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwctl rollout …: smpgwd's rollouts over D-Bus (doc/smpgwctl.md,
 * doc/rollouts.md), and `device ID labels`.
 *
 *   rollout create IMAGE (--devices D,… | --filter K=V…) [options] [--wait]
 *                                     Manager1.CreateRollout
 *   rollout plan (ID | IMAGE create-options…)   Rollout1.Plan / Manager1.PlanRollout
 *   rollout list | show ID            Rollout1.Json of each
 *   rollout pause|resume|cancel|activate ID
 *   device ID labels [--set L,…|--add L|--remove L]   Device1.Labels
 *
 * The options become the JSON spec every front end hands the engine,
 * sent as a{sv}; with --json the answers are the REST API's objects.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <systemd/sd-bus.h>

#include "cmd-daemon.h"
#include "ctl-daemon.h"
#include "ctl-session.h"
#include "util.h"

#define CTL_ROLLOUT_IFACE "org.smpgw.Rollout1"
#define CTL_ROLLOUT_PREFIX "/org/smpgw/rollout/"
#define WAIT_POLL_USEC 500000u

static const char *const day_names[] = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" };

/* ---- JSON into a{sv} ---- */

static int append_json(sd_bus_message *m, const json_t *v);

static int append_variant(sd_bus_message *m, const json_t *v) {
        int r;

        switch (json_typeof(v)) {
        case JSON_STRING:
                return sd_bus_message_append(m, "v", "s", json_string_value(v));
        case JSON_INTEGER:
                return sd_bus_message_append(m, "v", "x", (int64_t) json_integer_value(v));
        case JSON_REAL:
                return sd_bus_message_append(m, "v", "d", json_real_value(v));
        case JSON_TRUE:
        case JSON_FALSE:
                return sd_bus_message_append(m, "v", "b", json_is_true(v));
        case JSON_OBJECT:
                r = sd_bus_message_open_container(m, 'v', "a{sv}");
                if (r >= 0)
                        r = append_json(m, v);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                return r;
        case JSON_ARRAY: {
                size_t i;
                const json_t *item;
                r = sd_bus_message_open_container(m, 'v', "av");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'a', "v");
                json_array_foreach(v, i, item) if (r >= 0) r = append_variant(m, item);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                return r;
        }
        default:
                return -EINVAL;
        }
}

/* An object as a{sv}. */
static int append_json(sd_bus_message *m, const json_t *obj) {
        const char *key;
        json_t *v;
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        json_object_foreach((json_t *) obj, key, v) {
                if (r < 0 || json_is_null(v))
                        continue;
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", key);
                if (r >= 0)
                        r = append_variant(m, v);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        }
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

/* ---- the create options ---- */

/* "mon-fri 02:00-04:00", "sat,sun 00:00-24:00", "03:00-03:30" into the
 * window object; the daemon checks the times. */
static json_t *window_parse(const char *text) {
        _cleanup_free_ char *copy = strdup(text);
        char *sp, *times, *dash;
        json_t *days = NULL, *w;

        if (!copy)
                return NULL;
        sp = strchr(copy, ' ');
        times = sp ? sp + 1 : copy;
        if (sp) {
                *sp = 0;
                days = json_array();
                for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
                        char *to = strchr(tok, '-');
                        int a = -1, b = -1;
                        if (to)
                                *to++ = 0;
                        for (int i = 0; i < 7; i++) {
                                if (streq(tok, day_names[i]))
                                        a = i;
                                if (to && streq(to, day_names[i]))
                                        b = i;
                        }
                        if (a < 0 || (to && b < 0)) {
                                json_decref(days);
                                return NULL;
                        }
                        if (!to)
                                b = a;
                        for (int i = a;; i = (i + 1) % 7) {
                                json_array_append_new(days, json_string(day_names[i]));
                                if (i == b)
                                        break;
                        }
                }
        }
        dash = strchr(times, '-');
        if (!dash)
                return NULL;
        *dash = 0;
        w = json_pack("{s:s, s:s}", "from", times, "to", dash + 1);
        if (w && days)
                json_object_set_new(w, "days", days);
        return w;
}

static json_t *split_list(const char *text) {
        _cleanup_free_ char *copy = strdup(text);
        json_t *a = json_array();

        if (!copy || !a)
                return a;
        for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ","))
                json_array_append_new(a, json_string(tok));
        return a;
}

static void extend_list(json_t *a, const char *text) {
        json_t *more = split_list(text);
        if (more)
                json_array_extend(a, more);
        json_decref(more);
}

/* A count "5" or "10%": the daemon checks it. */
static json_t *count_value(const char *text) {
        return json_string(text);
}

struct rollout_opts {
        bool wait;
        const char *bus;
        json_t *spec, *targets, *filter, *schedule, *policy, *windows;
};

static void opts_done(struct rollout_opts *o) {
        json_decref(o->spec);
        json_decref(o->targets);
        json_decref(o->filter);
        json_decref(o->schedule);
        json_decref(o->policy);
        json_decref(o->windows);
}

enum {
        ARG_DEVICES = 0x100,
        ARG_FILTER,
        ARG_MODE,
        ARG_CANARY,
        ARG_WAVE_SIZE,
        ARG_SOAK,
        ARG_START,
        ARG_DEADLINE,
        ARG_WINDOW,
        ARG_TIMEZONE,
        ARG_STAGING,
        ARG_FAILURE_THRESHOLD,
        ARG_FAILURE_ACTION,
        ARG_MAX_REBOOTING,
        ARG_MAX_REBOOTING_RELAY,
        ARG_ATTEMPTS,
        ARG_WAIT,
        ARG_NAME,
        ARG_BUS,
        ARG_JSON,
        ARG_SET,
        ARG_ADD,
        ARG_REMOVE,
};

static const struct option create_options[] = { { "devices", required_argument, NULL, ARG_DEVICES },
                                                { "filter", required_argument, NULL, ARG_FILTER },
                                                { "mode", required_argument, NULL, ARG_MODE },
                                                { "canary", required_argument, NULL, ARG_CANARY },
                                                { "wave-size", required_argument, NULL, ARG_WAVE_SIZE },
                                                { "soak", required_argument, NULL, ARG_SOAK },
                                                { "start", required_argument, NULL, ARG_START },
                                                { "deadline", required_argument, NULL, ARG_DEADLINE },
                                                { "window", required_argument, NULL, ARG_WINDOW },
                                                { "timezone", required_argument, NULL, ARG_TIMEZONE },
                                                { "staging", no_argument, NULL, ARG_STAGING },
                                                { "failure-threshold", required_argument, NULL, ARG_FAILURE_THRESHOLD },
                                                { "failure-action", required_argument, NULL, ARG_FAILURE_ACTION },
                                                { "max-rebooting", required_argument, NULL, ARG_MAX_REBOOTING },
                                                { "max-rebooting-relay", required_argument, NULL,
                                                  ARG_MAX_REBOOTING_RELAY },
                                                { "attempts", required_argument, NULL, ARG_ATTEMPTS },
                                                { "wait", no_argument, NULL, ARG_WAIT },
                                                { "name", required_argument, NULL, ARG_NAME },
                                                { "bus", required_argument, NULL, ARG_BUS },
                                                { "json", no_argument, NULL, ARG_JSON },
                                                { "help", no_argument, NULL, 'h' },
                                                {} };

static void create_help(FILE *f, const char *verb) {
        fprintf(f,
                "Usage: smpgwctl rollout %s IMAGE (--devices D,... | --filter KEY=VALUE...) [--mode M]\n"
                "         [--canary N|N%%] [--wave-size N|N%%] [--soak S] [--start TIME] [--deadline TIME]\n"
                "         [--window 'mon-fri 02:00-04:00']... [--timezone TZ] [--staging]\n"
                "         [--failure-threshold N|N%%] [--failure-action pause|abort] [--max-rebooting N]\n"
                "         [--max-rebooting-relay N] [--attempts N] [--name NAME]%s [--json] [--bus BUS]\n"
                "\n"
                "%s\n"
                "Filter keys (all must match; repeat --filter): transport=T[,T...], name=GLOB,\n"
                "labels=L[,L...], board=B, app=A, version_below=V.  TIME is RFC 3339\n"
                "(2026-12-05T03:00:00Z).  doc/rollouts.md has the rules.\n",
                verb, streq(verb, "create") ? " [--wait]" : "",
                streq(verb, "create") ? "Has smpgwd push IMAGE to devices in waves; prints the rollout id."
                                      : "A dry run: the waves, the skipped devices and the estimated duration.");
}

static int number_option(const char *arg, const char *what, json_t **ret) {
        char *end;
        errno = 0;
        long long v = strtoll(arg, &end, 10);
        if (errno || *end || end == arg || v < 0) {
                ctl_log("--%s wants a number, not '%s'", what, arg);
                return CTL_EXIT_USAGE;
        }
        *ret = json_integer(v);
        return CTL_EXIT_OK;
}

/* Parses IMAGE and the create options into o->spec. */
static int parse_create(struct ctl_context *ctx, int argc, char *argv[], const char *verb, struct rollout_opts *o) {
        json_t *v;
        int c, r;

        o->policy = json_object();
        o->schedule = json_object();
        o->windows = json_array();
        o->filter = json_object();
        while ((c = getopt_long(argc, argv, "h", create_options, NULL)) >= 0) {
                v = NULL;
                switch (c) {
                case 'h':
                        create_help(stdout, verb);
                        return -1;
                case ARG_DEVICES:
                        json_decref(o->targets);
                        o->targets = json_pack("{s:o}", "devices", split_list(optarg));
                        break;
                case ARG_FILTER: {
                        const char *eq = strchr(optarg, '=');
                        _cleanup_free_ char *key = eq ? strndup(optarg, (size_t) (eq - optarg)) : NULL;
                        if (!key) {
                                ctl_log("--filter wants KEY=VALUE, not '%s'", optarg);
                                return CTL_EXIT_USAGE;
                        }
                        if (streq(key, "labels") || streq(key, "transport"))
                                json_object_set_new(o->filter, key, split_list(eq + 1));
                        else
                                json_object_set_new(o->filter, key, json_string(eq + 1));
                        break;
                }
                case ARG_MODE:
                        if (ctl_parse_update_mode(optarg) < 0)
                                return CTL_EXIT_USAGE;
                        json_object_set_new(o->spec, "mode", json_string(optarg));
                        break;
                case ARG_NAME:
                        json_object_set_new(o->spec, "name", json_string(optarg));
                        break;
                case ARG_CANARY:
                        json_object_set_new(o->policy, "canary", count_value(optarg));
                        break;
                case ARG_WAVE_SIZE:
                        json_object_set_new(o->policy, "wave_size", count_value(optarg));
                        break;
                case ARG_FAILURE_THRESHOLD:
                        json_object_set_new(o->policy, "failure_threshold", count_value(optarg));
                        break;
                case ARG_FAILURE_ACTION:
                        json_object_set_new(o->policy, "failure_action", json_string(optarg));
                        break;
                case ARG_SOAK:
                case ARG_MAX_REBOOTING:
                case ARG_MAX_REBOOTING_RELAY:
                case ARG_ATTEMPTS: {
                        const char *key = c == ARG_SOAK            ? "soak"
                                          : c == ARG_MAX_REBOOTING ? "max_rebooting"
                                          : c == ARG_ATTEMPTS      ? "attempts"
                                                                   : "max_rebooting_relay";
                        r = number_option(optarg, key, &v);
                        if (r != CTL_EXIT_OK)
                                return r;
                        json_object_set_new(o->policy, key, v);
                        break;
                }
                case ARG_START:
                        json_object_set_new(o->schedule, "start_at", json_string(optarg));
                        break;
                case ARG_DEADLINE:
                        json_object_set_new(o->schedule, "deadline", json_string(optarg));
                        break;
                case ARG_TIMEZONE:
                        json_object_set_new(o->schedule, "timezone", json_string(optarg));
                        break;
                case ARG_STAGING:
                        json_object_set_new(o->schedule, "staging", json_true());
                        break;
                case ARG_WINDOW:
                        v = window_parse(optarg);
                        if (!v) {
                                ctl_log("--window wants '[DAYS ]HH:MM-HH:MM' (mon-fri 02:00-04:00), not '%s'", optarg);
                                return CTL_EXIT_USAGE;
                        }
                        json_array_append_new(o->windows, v);
                        break;
                case ARG_WAIT:
                        if (!streq(verb, "create"))
                                return CTL_EXIT_USAGE;
                        o->wait = true;
                        break;
                case ARG_BUS:
                        o->bus = optarg;
                        break;
                case ARG_JSON:
                        ctx->json = true;
                        break;
                default:
                        create_help(stderr, verb);
                        return CTL_EXIT_USAGE;
                }
        }
        if (optind + 1 != argc) {
                ctl_log("rollout %s needs one IMAGE (an image id or a prefix of it)", verb);
                return CTL_EXIT_USAGE;
        }
        if (json_object_size(o->filter) > 0) {
                if (o->targets) {
                        ctl_log("give either --devices or --filter, not both");
                        return CTL_EXIT_USAGE;
                }
                o->targets = json_pack("{s:O}", "filter", o->filter);
        }
        if (!o->targets) {
                ctl_log("rollout %s needs --devices or --filter", verb);
                return CTL_EXIT_USAGE;
        }
        if (json_array_size(o->windows) > 0)
                json_object_set(o->schedule, "windows", o->windows);
        json_object_set_new(o->spec, "image", json_string(argv[optind]));
        json_object_set(o->spec, "targets", o->targets);
        if (json_object_size(o->schedule) > 0)
                json_object_set(o->spec, "schedule", o->schedule);
        if (json_object_size(o->policy) > 0)
                json_object_set(o->spec, "policy", o->policy);
        return CTL_EXIT_OK;
}

/* ---- reading rollouts ---- */

static int rollout_json(struct client *c, const char *path, json_t **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *text = NULL;
        int r;

        r = sd_bus_get_property_string(c->bus, CTL_BUS_NAME, path, CTL_ROLLOUT_IFACE, "Json", &error, &text);
        if (r < 0)
                return client_fail(c, &error, r, "Rollout1.Json");
        *ret = json_loads(text, 0, NULL);
        if (!*ret)
                return ctl_fail(c->ctx, CTL_EXIT_FAILURE, NULL, "smpgwd sent a rollout that is no JSON");
        return CTL_EXIT_OK;
}

static int rollout_path(struct ctl_context *ctx, const char *id, char *buf, size_t size) {
        if (!id[0] || strspn(id, "0123456789") != strlen(id) || id[0] == '0') {
                ctl_log("'%s' is no rollout id", id);
                return CTL_EXIT_USAGE;
        }
        snprintf(buf, size, CTL_ROLLOUT_PREFIX "%s", id);
        return CTL_EXIT_OK;
}

static void print_counts(const json_t *r) {
        const json_t *counts = json_object_get(r, "counts");
        const char *key;
        json_t *v;
        bool first = true;

        json_object_foreach((json_t *) counts, key, v) {
                if (json_integer_value(v) == 0)
                        continue;
                printf("%s%s %" JSON_INTEGER_FORMAT, first ? "" : ", ", key, json_integer_value(v));
                first = false;
        }
        printf("%s\n", first ? "no members" : "");
}

static void print_rollout(const json_t *r) {
        const json_t *f;
        size_t i;

        printf("rollout %" PRIu64 "%s%s\n", json_u64(r, "id"), json_str(r, "name")[0] ? ": " : "", json_str(r, "name"));
        printf("  image:       %s\n", json_str(r, "image"));
        printf("  mode:        %s\n", json_str(r, "mode"));
        printf("  state:       %s\n", json_str(r, "state"));
        if (json_str(r, "paused_reason")[0])
                printf("  paused:      %s\n", json_str(r, "paused_reason"));
        if (json_str(r, "error")[0])
                printf("  error:       %s\n", json_str(r, "error"));
        printf("  wave:        %" PRIu64 " of %" PRIu64 "\n", json_u64(r, "current_wave"), json_u64(r, "waves"));
        printf("  members:     ");
        print_counts(r);
        printf("  bytes:       %" PRIu64 " of %" PRIu64 "\n", json_u64(r, "bytes_sent"), json_u64(r, "bytes_total"));
        printf("  created:     %s\n", json_str(r, "created")[0] ? json_str(r, "created") : "-");
        printf("  started:     %s\n", json_str(r, "started")[0] ? json_str(r, "started") : "-");
        printf("  finished:    %s\n", json_str(r, "finished")[0] ? json_str(r, "finished") : "-");
        json_array_foreach(json_object_get(r, "failures"), i, f)
                printf("  failed:      device %" PRIu64 " (wave %" PRIu64 "): %s\n", json_u64(f, "device"),
                       json_u64(f, "wave"), json_str(f, "reason"));
        /* Mesh targets: the distribution each went in and its phase there,
         * or the job to its direct device. */
        json_array_foreach(json_object_get(r, "mesh_members"), i, f) {
                if (streq(json_str(f, "path"), "direct"))
                        printf("  mesh:        device %" PRIu64 ": direct, job %" PRIu64 ", %s\n",
                               json_u64(f, "device"), json_u64(f, "job"), json_str(f, "state"));
                else
                        printf("  mesh:        device %" PRIu64 ": distribution %" PRIu64 ", phase %s, %s\n",
                               json_u64(f, "device"), json_u64(f, "distribution"),
                               json_str(f, "mesh_phase")[0] ? json_str(f, "mesh_phase") : "-", json_str(f, "state"));
        }
}

static int wait_finished(struct client *c, const char *path, json_t **ret) {
        for (;;) {
                json_t *r = NULL;
                int k = rollout_json(c, path, &r);
                if (k != CTL_EXIT_OK)
                        return k;
                const char *state = json_str(r, "state");
                if (streq(state, "completed") || streq(state, "cancelled") || streq(state, "aborted") ||
                    streq(state, "paused")) {
                        *ret = r;
                        return CTL_EXIT_OK;
                }
                json_decref(r);
                usleep(WAIT_POLL_USEC);
        }
}

/* ---- commands ---- */

static int cmd_create_or_plan(struct ctl_context *ctx, int argc, char *argv[], const char *verb) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        struct rollout_opts o = { .spec = json_object() };
        struct client c = {};
        bool plan = streq(verb, "plan");
        int r;

        r = parse_create(ctx, argc, argv, verb, &o);
        if (r != CTL_EXIT_OK) {
                opts_done(&o);
                return r < 0 ? CTL_EXIT_OK : r;
        }
        r = client_open(ctx, o.bus, &c);
        if (r != CTL_EXIT_OK) {
                opts_done(&o);
                return r;
        }
        r = sd_bus_message_new_method_call(c.bus, &call, CTL_BUS_NAME, CTL_ROOT_PATH, CTL_MANAGER_IFACE,
                                           plan ? "PlanRollout" : "CreateRollout");
        if (r >= 0)
                r = append_json(call, o.spec);
        opts_done(&o);
        if (r < 0) {
                client_close(&c);
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "cannot build the call: %s", strerror(-r));
        }
        r = sd_bus_call(c.bus, call, CTL_CALL_TIMEOUT_USEC, &error, &reply);
        if (r < 0) {
                r = client_fail(&c, &error, r, plan ? "PlanRollout" : "CreateRollout");
                client_close(&c);
                return r;
        }
        if (plan) {
                const char *text;
                json_t *p;
                r = sd_bus_message_read(reply, "s", &text);
                p = r >= 0 ? json_loads(text, 0, NULL) : NULL;
                client_close(&c);
                if (!p)
                        return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "unexpected PlanRollout answer");
                return print_json(ctx, "plan", p);
        }
        const char *path;
        json_t *ro = NULL;
        if (sd_bus_message_read(reply, "o", &path) < 0) {
                client_close(&c);
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "unexpected CreateRollout answer");
        }
        r = o.wait ? wait_finished(&c, path, &ro) : rollout_json(&c, path, &ro);
        client_close(&c);
        if (r != CTL_EXIT_OK)
                return r;
        bool ok = !o.wait || streq(json_str(ro, "state"), "completed");
        if (ctx->json)
                r = print_json(ctx, "rollout", ro);
        else {
                if (o.wait)
                        print_rollout(ro);
                else
                        printf("%" PRIu64 "\n", json_u64(ro, "id"));
                json_decref(ro);
        }
        return r != CTL_EXIT_OK ? r : ok ? CTL_EXIT_OK : CTL_EXIT_JOB_FAILED;
}

/* Options of the commands on one rollout: --json, --bus. */
static int parse_simple(struct ctl_context *ctx, int argc, char *argv[], const char *usage, int nargs,
                        const char **ret_bus) {
        static const struct option options[] = { { "bus", required_argument, NULL, ARG_BUS },
                                                 { "json", no_argument, NULL, ARG_JSON },
                                                 { "help", no_argument, NULL, 'h' },
                                                 {} };
        int c;

        *ret_bus = NULL;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_BUS:
                        *ret_bus = optarg;
                        break;
                case ARG_JSON:
                        ctx->json = true;
                        break;
                case 'h':
                        printf("Usage: smpgwctl %s [--json] [--bus BUS]\n", usage);
                        return -1;
                default:
                        return CTL_EXIT_USAGE;
                }
        if (argc - optind != nargs) {
                fprintf(stderr, "Usage: smpgwctl %s [--json] [--bus BUS]\n", usage);
                return CTL_EXIT_USAGE;
        }
        return CTL_EXIT_OK;
}

static int cmd_control(struct ctl_context *ctx, int argc, char *argv[], const char *method) {
        char usage[64], path[128];
        const char *bus;
        struct client c = {};
        json_t *ro = NULL;
        int r;

        snprintf(usage, sizeof(usage), "rollout %s ID", ctx->command + strlen("rollout "));
        r = parse_simple(ctx, argc, argv, usage, 1, &bus);
        if (r != CTL_EXIT_OK)
                return r < 0 ? CTL_EXIT_OK : r;
        r = rollout_path(ctx, argv[optind], path, sizeof(path));
        if (r != CTL_EXIT_OK)
                return r;
        r = client_open(ctx, bus, &c);
        if (r != CTL_EXIT_OK)
                return r;
        if (method)
                r = client_call(&c, path, CTL_ROLLOUT_IFACE, method, NULL, NULL);
        if (r == CTL_EXIT_OK)
                r = rollout_json(&c, path, &ro);
        client_close(&c);
        if (r != CTL_EXIT_OK)
                return r;
        if (ctx->json)
                return print_json(ctx, "rollout", ro);
        if (!method)
                print_rollout(ro);
        else
                printf("rollout %" PRIu64 ": %s\n", json_u64(ro, "id"), json_str(ro, "state"));
        json_decref(ro);
        return CTL_EXIT_OK;
}

int cmd_rollout_create(struct ctl_context *ctx, int argc, char *argv[]) {
        return cmd_create_or_plan(ctx, argc, argv, "create");
}

int cmd_rollout_plan(struct ctl_context *ctx, int argc, char *argv[]) {
        char path[128];
        const char *bus;
        struct client c = {};
        int r;

        /* "plan ID": a running rollout re-planned from now */
        if (argc >= 2 && argv[1][0] >= '1' && argv[1][0] <= '9' && strspn(argv[1], "0123456789") == strlen(argv[1]) &&
            strlen(argv[1]) < 20) {
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
                const char *text;
                json_t *p;

                r = parse_simple(ctx, argc, argv, "rollout plan ID", 1, &bus);
                if (r != CTL_EXIT_OK)
                        return r < 0 ? CTL_EXIT_OK : r;
                r = rollout_path(ctx, argv[optind], path, sizeof(path));
                if (r == CTL_EXIT_OK)
                        r = client_open(ctx, bus, &c);
                if (r != CTL_EXIT_OK)
                        return r;
                r = client_call(&c, path, CTL_ROLLOUT_IFACE, "Plan", &reply, NULL);
                if (r != CTL_EXIT_OK) {
                        client_close(&c);
                        return r;
                }
                p = sd_bus_message_read(reply, "s", &text) >= 0 ? json_loads(text, 0, NULL) : NULL;
                client_close(&c);
                if (!p)
                        return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "unexpected Plan answer");
                return print_json(ctx, "plan", p);
        }
        return cmd_create_or_plan(ctx, argc, argv, "plan");
}

int cmd_rollout_list(struct ctl_context *ctx, int argc, char *argv[]) {
        _cleanup_(json_decrefp) json_t *objects = NULL;
        json_t *list = json_array();
        const char *bus, *path;
        struct client c = {};
        json_t *ifaces;
        int r;

        r = parse_simple(ctx, argc, argv, "rollout list", 0, &bus);
        if (r != CTL_EXIT_OK) {
                json_decref(list);
                return r < 0 ? CTL_EXIT_OK : r;
        }
        r = client_open(ctx, bus, &c);
        if (r == CTL_EXIT_OK)
                r = get_managed_objects(&c, &objects);
        if (r != CTL_EXIT_OK) {
                client_close(&c);
                json_decref(list);
                return r;
        }
        json_object_foreach(objects, path, ifaces) {
                json_t *ro = NULL;
                if (!json_object_get(ifaces, CTL_ROLLOUT_IFACE))
                        continue;
                if (rollout_json(&c, path, &ro) == CTL_EXIT_OK)
                        json_array_append_new(list, ro);
        }
        client_close(&c);
        if (ctx->json)
                return print_json(ctx, "rollouts", list);
        printf("%-6s %-10s %-14s %-6s %s\n", "ID", "STATE", "IMAGE", "WAVE", "MEMBERS");
        size_t i;
        const json_t *ro;
        json_array_foreach(list, i, ro) {
                printf("%-6" PRIu64 " %-10s %-14.12s %" PRIu64 "/%-4" PRIu64 " ", json_u64(ro, "id"),
                       json_str(ro, "state"), json_str(ro, "image"), json_u64(ro, "current_wave"),
                       json_u64(ro, "waves"));
                print_counts(ro);
        }
        json_decref(list);
        return CTL_EXIT_OK;
}

int cmd_rollout_show(struct ctl_context *ctx, int argc, char *argv[]) {
        return cmd_control(ctx, argc, argv, NULL);
}

int cmd_rollout_pause(struct ctl_context *ctx, int argc, char *argv[]) {
        return cmd_control(ctx, argc, argv, "Pause");
}

int cmd_rollout_resume(struct ctl_context *ctx, int argc, char *argv[]) {
        return cmd_control(ctx, argc, argv, "Resume");
}

int cmd_rollout_cancel(struct ctl_context *ctx, int argc, char *argv[]) {
        return cmd_control(ctx, argc, argv, "Cancel");
}

int cmd_rollout_activate(struct ctl_context *ctx, int argc, char *argv[]) {
        return cmd_control(ctx, argc, argv, "Activate");
}

/* ---- device ID labels ---- */

int cmd_device_labels(struct ctl_context *ctx, int argc, char *argv[]) {
        static const struct option options[] = { { "set", required_argument, NULL, ARG_SET },
                                                 { "add", required_argument, NULL, ARG_ADD },
                                                 { "remove", required_argument, NULL, ARG_REMOVE },
                                                 { "bus", required_argument, NULL, ARG_BUS },
                                                 { "json", no_argument, NULL, ARG_JSON },
                                                 { "help", no_argument, NULL, 'h' },
                                                 {} };
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(json_decrefp) json_t *devices = NULL, *objects = NULL;
        _cleanup_(json_decrefp) json_t *set = NULL, *add = json_array(), *remove = json_array();
        const char *bus = NULL, *spec;
        struct client c = {};
        char path[64];
        int ch, r;

        /* argv: "smpgwctl device", ID, "labels", options */
        if (argc < 3)
                return CTL_EXIT_USAGE;
        spec = argv[1];
        optind = 3;
        while ((ch = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (ch) {
                case ARG_SET:
                        json_decref(set);
                        set = split_list(optarg);
                        break;
                case ARG_ADD:
                        extend_list(add, optarg);
                        break;
                case ARG_REMOVE:
                        extend_list(remove, optarg);
                        break;
                case ARG_BUS:
                        bus = optarg;
                        break;
                case ARG_JSON:
                        ctx->json = true;
                        break;
                case 'h':
                        printf("Usage: smpgwctl device ID|CONN labels [--set L,...|--add L|--remove L] [--json] "
                               "[--bus BUS]\n\nShows a device's labels, or sets, adds or removes some.\n");
                        return CTL_EXIT_OK;
                default:
                        return CTL_EXIT_USAGE;
                }
        if (optind != argc) {
                ctl_log("device ID labels takes no more arguments");
                return CTL_EXIT_USAGE;
        }
        r = client_open(ctx, bus, &c);
        if (r == CTL_EXIT_OK)
                r = get_managed_objects(&c, &objects);
        if (r != CTL_EXIT_OK) {
                client_close(&c);
                return r;
        }
        devices = rest_list(objects, CTL_DEVICE_IFACE);
        const json_t *d = devices ? find_device(devices, spec) : NULL;
        if (!d) {
                client_close(&c);
                return ctl_fail(ctx, CTL_EXIT_REFUSED, NULL, "no device '%s'", spec);
        }
        snprintf(path, sizeof(path), CTL_DEVICE_PREFIX "%" PRIu64, json_u64(d, "id"));
        if (set || json_array_size(add) || json_array_size(remove)) {
                json_t *labels = set ? json_incref(set) : json_deep_copy(json_object_get(d, "labels"));
                _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
                size_t i, k;
                json_t *v;

                if (!labels)
                        labels = json_array();
                json_array_extend(labels, add);
                json_array_foreach(remove, i, v) for (k = json_array_size(labels); k > 0;
                                                      k--) if (json_equal(json_array_get(labels, k - 1), v))
                        json_array_remove(labels, k - 1);
                r = sd_bus_message_new_method_call(c.bus, &m, CTL_BUS_NAME, path, "org.freedesktop.DBus.Properties",
                                                   "Set");
                if (r >= 0)
                        r = sd_bus_message_append(m, "ss", CTL_DEVICE_IFACE, "Labels");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', "as");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'a', "s");
                json_array_foreach(labels, i, v) if (r >= 0) r = sd_bus_message_append(m, "s", json_string_value(v));
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                json_decref(labels);
                if (r >= 0)
                        r = sd_bus_call(c.bus, m, CTL_CALL_TIMEOUT_USEC, &error, NULL);
                if (r < 0) {
                        r = client_fail(&c, &error, r, "Labels");
                        client_close(&c);
                        return r;
                }
        }
        json_t *dev = NULL;
        r = get_rest_object(&c, path, CTL_DEVICE_IFACE, &dev);
        client_close(&c);
        if (r != CTL_EXIT_OK)
                return r;
        json_t *labels = json_incref(json_object_get(dev, "labels"));
        json_decref(dev);
        if (ctx->json)
                return print_json(ctx, "labels", labels ?: json_array());
        size_t i;
        json_t *v;
        json_array_foreach(labels, i, v) printf("%s\n", json_string_value(v));
        json_decref(labels);
        return CTL_EXIT_OK;
}
