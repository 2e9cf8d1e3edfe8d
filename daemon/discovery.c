/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Discovery rounds, every config.discovery_interval (and on demand,
 * manager_scan()):
 *   - udp ranges: the udp plugin's own range probe (one datagram per
 *     target, answers matched by source address);
 *   - coap ranges: the coap plugin cannot discover, so each target gets a
 *     short SMP session reading the mcumgr parameters, at most
 *     RANGE_PROBES_AT_ONCE at a time;
 *   - ble: BlueZ LE discovery filtered on the SMP service for most of
 *     the interval.
 * Every device found goes to device_seen(), which adds or refreshes
 * it.  A source that fails (no BlueZ on this machine) is logged once per
 * change of error and tried again next round.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "discovery-range.h"
#include "log.h"
#include "manager.h"
#include "smpgw/smp-discovery.h"
#include "smpgw/smp-os.h"
#include "smpgw/smp-session.h"
#include "util.h"

#define RANGE_PROBES_AT_ONCE 16u
#define RANGE_PROBE_TIMEOUT_USEC (2 * 1000000ull)

struct discovery;

/* One source of one round: a plugin discovery or a session range probe. */
struct source {
        struct discovery *disc;
        char *label;                   /* "udp 127.0.0.1:1337-1356" */
        const struct smp_transport *transport;
        struct smp_discovery *running; /* plugin discovery */
        int last_error;
        /* session range probe */
        char **targets;
        size_t n_targets, next_target;
        unsigned in_flight;
};

struct range_probe {
        struct source *src;
        struct smp_session *session;
        char *conn;
        sd_event_source *defer;
};

struct discovery {
        struct manager *manager;
        struct source *sources;
        size_t n_sources;
        sd_event_source *timer;
        bool round_running;
};

static void source_stop(struct source *src);

static bool round_done(struct discovery *disc) {
        for (size_t i = 0; i < disc->n_sources; i++) {
                struct source *src = &disc->sources[i];
                if (src->running || src->in_flight || src->next_target < src->n_targets)
                        return false;
        }
        return true;
}

static void round_check(struct discovery *disc) {
        if (disc->round_running && round_done(disc)) {
                disc->round_running = false;
                log_debug("Discovery round finished");
        }
}

static void on_plugin_found(const struct smp_discovered *found, void *userdata) {
        struct source *src = userdata;
        struct discovery *disc = src->disc;

        if (!found) {
                /* The round of this source is over. */
                src->running = smp_discovery_free(src->running);
                round_check(disc);
                return;
        }
        device_seen(disc->manager, found);
}

/* ---- the session range probe ---- */

static void range_next(struct source *src);

static int on_range_probe_done(sd_event_source *s, void *userdata) {
        struct range_probe *rp = userdata;
        struct source *src = rp->src;
        sd_event_source_disable_unref(rp->defer);
        smp_session_free(rp->session);
        free(rp->conn);
        free(rp);
        src->in_flight--;
        range_next(src);
        round_check(src->disc);
        return 0;
}

static void on_range_answer(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                            size_t len, void *userdata) {
        struct range_probe *rp = userdata;

        /* Any SMP answer, even an error, means an SMP server is there. */
        if (error >= 0) {
                struct smp_discovered found = { .conn = rp->conn };
                device_seen(rp->src->disc->manager, &found);
        }
        if (sd_event_add_defer(rp->src->disc->manager->event, &rp->defer, on_range_probe_done, rp) < 0)
                log_warning("Out of memory ending a discovery probe of %s", rp->conn);
}

static void range_next(struct source *src) {
        static const uint8_t empty_map[] = { 0xa0 };
        struct manager *m = src->disc->manager;

        while (src->in_flight < RANGE_PROBES_AT_ONCE && src->next_target < src->n_targets) {
                const char *conn = src->targets[src->next_target++];
                struct device *known = manager_find_device_by_conn(m, conn);
                /* A known device busy with a job or probe is seen through
                 * that; a second session would only disturb it. */
                if (known && (known->job || known->probe)) {
                        device_mark_seen(known);
                        continue;
                }
                struct range_probe *rp = calloc(1, sizeof(*rp));
                if (!rp)
                        return;
                rp->src = src;
                rp->conn = strdup(conn);
                const struct smp_request_params params = {
                        .op = SMP_OP_READ,
                        .group = SMP_GROUP_OS,
                        .id = SMP_OS_CMD_MCUMGR_PARAMS,
                        .body = empty_map,
                        .body_len = sizeof(empty_map),
                        .idempotent = true,
                        .timeout_usec = RANGE_PROBE_TIMEOUT_USEC,
                };
                if (!rp->conn || smp_session_open(m->smp, m->event, conn, &rp->session) < 0 ||
                    smp_session_send(rp->session, &params, on_range_answer, rp, NULL) < 0) {
                        smp_session_free(rp->session);
                        free(rp->conn);
                        free(rp);
                        continue;
                }
                smp_session_set_retries(rp->session, 1);
                src->in_flight++;
        }
}

/* A range (discovery-range.h) into its connection strings
 * "scheme:HOST:PORT", at most DISCOVERY_RANGE_TARGETS_MAX. */
static int range_expand(const char *scheme, const char *text, char ***ret, size_t *ret_n) {
        struct discovery_range range;
        char **out = NULL;
        int r;

        r = discovery_range_parse(text, &range);
        if (r < 0)
                return r;
        out = calloc((size_t) range.n_targets + 1, sizeof(char *));
        if (!out)
                return -ENOMEM;
        for (uint32_t i = 0; i < range.n_targets; i++) {
                char conn[SMP_CONN_MAX + 16];
                r = discovery_range_target(&range, scheme, i, conn, sizeof(conn));
                if (r >= 0 && !(out[i] = strdup(conn)))
                        r = -ENOMEM;
                if (r < 0) {
                        smp_strv_free(out);
                        return r;
                }
        }
        *ret = out;
        *ret_n = range.n_targets;
        return 0;
}

/* ---- rounds ---- */

static void source_report(struct source *src, int r) {
        if (r == src->last_error)
                return;
        src->last_error = r;
        if (r < 0)
                log_warning_errno(r, "Discovery %s: %m", src->label);
        else
                log_info("Discovery %s works again", src->label);
}

static void source_start(struct source *src) {
        struct manager *m = src->disc->manager;
        int r;

        if (src->targets) {
                src->next_target = 0;
                range_next(src);
                source_report(src, 0);
                return;
        }
        if (src->running)
                return;
        /* A BLE scan fills most of the interval, leaving a gap so a scan
         * never overlaps the next one. */
        char args[96] = "";
        if (strcmp(src->transport->name, "ble") == 0) {
                uint64_t secs = m->config->discovery_interval_usec / 1000000u;
                secs = secs > 2 ? secs - 1 : 1;
                const char *adapter = strchr(src->label, '=');
                snprintf(args, sizeof(args), "seconds=%" PRIu64 "%s%s", MIN(secs, (uint64_t) 3600),
                         adapter ? ",adapter=" : "", adapter ? adapter + 1 : "");
        } else {
                const char *space = strchr(src->label, ' ');
                snprintf(args, sizeof(args), "%s", space ? space + 1 : "");
        }
        r = smp_discovery_start(m->smp, m->event, src->transport->name, args, on_plugin_found, src, &src->running);
        source_report(src, r < 0 ? r : 0);
}

static void round_start(struct discovery *disc) {
        disc->round_running = true;
        for (size_t i = 0; i < disc->n_sources; i++)
                source_start(&disc->sources[i]);
        round_check(disc);
}

static int on_round_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct discovery *disc = userdata;
        if (!disc->round_running)
                round_start(disc);
        (void) sd_event_source_set_time(s, usec + disc->manager->config->discovery_interval_usec);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

int manager_scan(struct manager *m) {
        if (!m->discovery)
                return -ENOTCONN;
        if (m->discovery->round_running)
                return -EALREADY;
        round_start(m->discovery);
        return 0;
}

static int source_add(struct discovery *disc, const char *scheme, const char *arg, bool session_probe) {
        const struct smp_transport *t;
        int r;

        _cleanup_free_ char *why = NULL;
        r = smp_context_find_transport(disc->manager->smp, scheme, &t, &why);
        if (r < 0)
                return log_error_errno(r, "Discovery: no %s transport: %s", scheme, why ? why : strerror(-r));
        if (!session_probe && !t->discover_start)
                return log_error_errno(-EOPNOTSUPP, "Discovery: the %s transport cannot discover", scheme);

        struct source *g = realloc(disc->sources, (disc->n_sources + 1) * sizeof(*g));
        if (!g)
                return -ENOMEM;
        disc->sources = g;
        struct source *src = &disc->sources[disc->n_sources];
        *src = (struct source) { .disc = disc, .transport = t };
        if (asprintf(&src->label, "%s%s%s", scheme, arg ? " " : "", arg ? arg : "") < 0)
                return -ENOMEM;
        if (session_probe) {
                r = range_expand(scheme, arg, &src->targets, &src->n_targets);
                if (r < 0) {
                        free(src->label);
                        return log_error_errno(r, "Discovery: bad %s range '%s' (HOST:PORT[-PORT] or "
                                                  "A.B.C.D-A.B.C.E:PORT[-PORT], at most %u targets): %m",
                                               scheme, arg, DISCOVERY_RANGE_TARGETS_MAX);
                }
                src->next_target = src->n_targets;
        }
        disc->n_sources++;
        return 0;
}

static void source_stop(struct source *src) {
        src->running = smp_discovery_free(src->running);
}

struct discovery *discovery_free(struct discovery *disc) {
        if (!disc)
                return NULL;
        for (size_t i = 0; i < disc->n_sources; i++) {
                struct source *src = &disc->sources[i];
                source_stop(src);
                smp_strv_free(src->targets);
                free(src->label);
        }
        free(disc->sources);
        sd_event_source_disable_unref(disc->timer);
        free(disc);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct discovery *, discovery_free);

int discovery_start(struct manager *m, struct discovery **ret) {
        const struct config *c = m->config;
        _cleanup_(discovery_freep) struct discovery *disc = calloc(1, sizeof(*disc));
        uint64_t now;
        int r;

        if (!disc)
                return -ENOMEM;
        disc->manager = m;
        for (size_t i = 0; i < c->n_discover_udp; i++) {
                r = source_add(disc, "udp", c->discover_udp[i], false);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < c->n_discover_coap; i++) {
                r = source_add(disc, "coap", c->discover_coap[i], true);
                if (r < 0)
                        return r;
        }
        if (c->discover_ble) {
                if (c->n_ble_adapters == 0)
                        r = source_add(disc, "ble", NULL, false);
                for (size_t i = 0; i < c->n_ble_adapters; i++) {
                        char label[32];
                        snprintf(label, sizeof(label), "adapter=%s", c->ble_adapters[i]);
                        r = source_add(disc, "ble", label, false);
                        if (r < 0)
                                break;
                }
                if (r < 0)
                        return r;
        }
        /* NON GET /.well-known/core to 224.0.1.187:5683 with the plugin's
         * defaults (doc/transport-coap.md); answers come from each
         * device's own address and port. */
        if (c->discover_coap_multicast) {
                r = source_add(disc, "coap", "multicast", false);
                if (r < 0)
                        return r;
        }

        r = sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return r;
        /* The first round right away: a gateway that just started wants
         * its inventory now, not in a minute. */
        r = sd_event_add_time(m->event, &disc->timer, CLOCK_MONOTONIC, now, 0, on_round_timer, disc);
        if (r < 0)
                return r;
        log_info("Discovery: %zu sources, every %" PRIu64 " s", disc->n_sources,
                 c->discovery_interval_usec / 1000000u);
        *ret = TAKE_PTR(disc);
        return 0;
}
