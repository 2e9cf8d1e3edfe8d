/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwctl scan [--seconds N] [--adapter hciN] [--transport NAME]
 *
 * Lists SMP devices found by a transport's discovery (default: ble,
 * BlueZ LE discovery filtered on the SMP service UUID) for N seconds
 * (default 5); Ctrl-C ends the scan early with what was found.  Each
 * device is printed as it is found: connection string, address type,
 * RSSI, adapter and name; with --json one object at the end,
 * {"devices": [{"conn", "address", "address_type", "name", "rssi",
 * "adapter"}...]}.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "ctl-session.h"
#include "smpgw/smp-discovery.h"
#include "smpgw/smp-parse.h"
#include "smpgwctl.h"
#include "util.h"

#define SCAN_SECONDS_DEFAULT 5u
#define SCAN_SECONDS_MAX 3600u

DEFINE_TRIVIAL_CLEANUP_FUNC(struct smp_context *, smp_context_unref);

struct scan {
        const struct ctl_context *ctx;
        sd_event *event;
        json_t *devices;
        unsigned count;
        bool done;
        int error;
};

static json_t *json_string_or_null(const char *s) {
        return s ? json_string(s) : json_null();
}

static void on_found(const struct smp_discovered *d, void *userdata) {
        struct scan *s = userdata;

        if (!d) {
                s->done = true;
                (void) sd_event_exit(s->event, 0);
                return;
        }
        s->count++;
        if (s->ctx->json) {
                json_t *o = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o}", "conn", d->conn, "address",
                                      json_string_or_null(d->address), "address_type",
                                      json_string_or_null(d->address_type), "name", json_string_or_null(d->name),
                                      "rssi", d->has_rssi ? json_integer(d->rssi) : json_null(), "adapter",
                                      json_string_or_null(d->adapter));
                if (!o || json_array_append_new(s->devices, o) < 0)
                        s->error = -ENOMEM;
                return;
        }
        char rssi[16];
        if (d->has_rssi)
                snprintf(rssi, sizeof(rssi), "%d", d->rssi);
        else
                snprintf(rssi, sizeof(rssi), "-");
        printf("%-24s %-7s %5s %-6s %s\n", d->conn, d->address_type ?: "-", rssi, d->adapter ?: "-",
               d->name ?: "");
        fflush(stdout);
}

static void scan_help(FILE *f) {
        fprintf(f,
                "Usage: smpgwctl scan [--seconds N] [--adapter hciN] [--transport NAME]\n"
                "\n"
                "Lists SMP devices a transport discovers (default: ble, through BlueZ,\n"
                "LE devices advertising the SMP service).\n"
                "\n"
                "  --seconds N        scan this long (1..%u, default %u); Ctrl-C stops early\n"
                "  --adapter hciN     only this Bluetooth adapter (default: all)\n"
                "  --transport NAME   a transport with discovery (default: ble)\n"
                "  -j, --json         one JSON object at the end\n",
                SCAN_SECONDS_MAX, SCAN_SECONDS_DEFAULT);
}

int cmd_scan(struct ctl_context *ctx, int argc, char *argv[]) {
        /* Above the CTL_ARG_* values of the global options. */
        enum { ARG_SECONDS = 0x400, ARG_ADAPTER, ARG_TRANSPORT };
        static const struct option options[] = {
                CTL_GLOBAL_OPTIONS,
                { "help", no_argument, NULL, 'h' },
                { "seconds", required_argument, NULL, ARG_SECONDS },
                { "adapter", required_argument, NULL, ARG_ADAPTER },
                { "transport", required_argument, NULL, ARG_TRANSPORT },
                {}
        };
        unsigned seconds = SCAN_SECONDS_DEFAULT;
        const char *adapter = NULL, *transport_name = "ble";
        int c, r;

        while ((c = getopt_long(argc, argv, CTL_GLOBAL_SHORTOPTS "h", options, NULL)) >= 0) {
                r = ctl_global_option(ctx, c, optarg);
                if (r < 0)
                        return CTL_EXIT_USAGE;
                if (r > 0)
                        continue;
                switch (c) {
                case 'h':
                        scan_help(stdout);
                        return CTL_EXIT_OK;
                case ARG_SECONDS: {
                        uint64_t v;
                        if (smp_parse_uint(optarg, 1, SCAN_SECONDS_MAX, &v) < 0) {
                                ctl_log("--seconds wants a number from 1 to %u, not '%s'", SCAN_SECONDS_MAX,
                                        optarg);
                                return CTL_EXIT_USAGE;
                        }
                        seconds = (unsigned) v;
                        break;
                }
                case ARG_ADAPTER:
                        if (strncmp(optarg, "hci", 3) != 0 || strlen(optarg) > 8 || !optarg[3] ||
                            strspn(optarg + 3, "0123456789") != strlen(optarg + 3)) {
                                ctl_log("--adapter wants an adapter name such as hci0, not '%s'", optarg);
                                return CTL_EXIT_USAGE;
                        }
                        adapter = optarg;
                        break;
                case ARG_TRANSPORT:
                        transport_name = optarg;
                        break;
                default:
                        return CTL_EXIT_USAGE;
                }
        }
        if (optind < argc) {
                ctl_log("usage: smpgwctl scan [--seconds N] [--adapter hciN]; see 'smpgwctl scan --help'");
                return CTL_EXIT_USAGE;
        }

        _cleanup_(smp_context_unrefp) struct smp_context *smp = NULL;
        _cleanup_free_ char *why = NULL;
        const struct smp_transport *t;
        r = ctl_smp_context_new(ctx, &smp);
        if (r != CTL_EXIT_OK)
                return r;
        /* A plugin missing or unusable is a transport error (6), as for
         * --conn; a transport that cannot discover is a bad --transport,
         * a usage error, which prints nothing on stdout (not even with
         * --json). */
        r = smp_context_find_transport(smp, transport_name, &t, &why);
        if (r < 0)
                return ctl_fail(ctx, CTL_EXIT_TRANSPORT, NULL, "no '%s' transport: %s", transport_name,
                                why ? why : strerror(-r));
        if (!t->discover_start) {
                ctl_log("the '%s' transport cannot discover", transport_name);
                return CTL_EXIT_USAGE;
        }

        char args[64];
        if (streq(transport_name, "ble"))
                snprintf(args, sizeof(args), "seconds=%u%s%s", seconds, adapter ? ",adapter=" : "",
                         adapter ?: "");
        else
                args[0] = 0;

        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        struct scan s = { .ctx = ctx };
        r = sd_event_new(&event);
        if (r < 0)
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "event loop: %s", strerror(-r));
        s.event = event;
        s.devices = json_array();
        if (!s.devices)
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "out of memory");

        /* Ctrl-C ends the scan (the loop exits, the discovery is stopped). */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        (void) sigprocmask(SIG_BLOCK, &mask, NULL);
        (void) sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
        (void) sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        /* A transport that runs until stopped ends here. */
        (void) sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, (uint64_t) (seconds + 1) * 1000000u, 0,
                                          NULL, NULL);

        struct smp_discovery *d;
        r = smp_discovery_start(smp, event, transport_name, args, on_found, &s, &d);
        if (r < 0) {
                json_decref(s.devices);
                return ctl_fail(ctx, ctl_exit_code_from_errno(r), NULL, "cannot scan with '%s': %s", transport_name,
                                strerror(-r));
        }
        if (!ctx->json)
                printf("%-24s %-7s %5s %-6s %s\n", "CONN", "TYPE", "RSSI", "ADAPTER", "NAME");
        r = sd_event_loop(event);
        smp_discovery_free(d);
        (void) sd_event_run(event, 0);
        if (r < 0 || s.error < 0) {
                json_decref(s.devices);
                return ctl_fail(ctx, CTL_EXIT_FAILURE, NULL, "scan failed: %s", strerror(-(r < 0 ? r : s.error)));
        }
        if (ctx->json)
                return ctl_json_print(ctx, json_pack("{s:o}", "devices", s.devices));
        json_decref(s.devices);
        ctl_debug(ctx, "%u device(s) found", s.count);
        return CTL_EXIT_OK;
}
