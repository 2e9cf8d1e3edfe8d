/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwd: the SMP firmware-update gateway daemon.
 *
 *   smpgwd [--config FILE] [--db FILE] [--state-dir DIR] [--rest ADDR:PORT]
 *          [--bus system|session|none|ADDRESS] [--plugin-dir DIR] [--debug]
 *   smpgwd [--config FILE] [--rest ...] --check-config
 *
 * The configuration file is read first, flags override it.  SIGTERM and
 * SIGINT stop cleanly (running jobs are checkpointed and resume at the
 * next start), SIGHUP reloads what can change at run time.  Readiness,
 * status and the watchdog go to systemd through sd_notify.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "conf.h"
#include "log.h"
#include "manager.h"
#include "util.h"

/* The only mutable globals of the daemon: the log settings, written once
 * before the loop starts. */
int smpgwd_log_max_level = LOG_INFO;
bool smpgwd_log_to_journal = false;

DEFINE_TRIVIAL_CLEANUP_FUNC(struct config *, config_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct manager *, manager_free);

static void help(void) {
        printf("smpgwd " PACKAGE_VERSION " — SMP firmware-update gateway daemon\n\n"
               "Usage: smpgwd [OPTIONS]\n\n"
               "  -c, --config FILE      configuration file (default " SMPGWD_CONFIG_PATH_DEFAULT ")\n"
               "      --db FILE          SQLite database (default STATE_DIR/smpgw.db)\n"
               "      --state-dir DIR    database and image store (default " SMPGWD_STATE_DIR_DEFAULT ")\n"
               "      --rest ADDR:PORT   REST API address (default 127.0.0.1:8080; 'off' disables it)\n"
               "      --bus BUS          D-Bus API on system (default), session, none, or a bus address\n"
               "      --plugin-dir DIR   transport plugins directory\n"
               "  -d, --debug            debug logging\n"
               "      --check-config     read the configuration and the files it names, say\n"
               "                         whether smpgwd would start with it, and exit\n"
               "      --version          print the version\n"
               "  -h, --help             this help\n\n"
               "Every configuration key is described in doc/smpgwd.conf.md.\n");
}

struct cli {
        const char *config_path;
        const char *db, *state_dir, *rest, *bus, *plugin_dir;
        bool debug;
        bool check_config;
};

static int parse_argv(int argc, char *argv[], struct cli *cli) {
        enum { ARG_DB = 0x100, ARG_STATE_DIR, ARG_REST, ARG_BUS, ARG_PLUGIN_DIR, ARG_VERSION, ARG_CHECK_CONFIG };
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "db", required_argument, NULL, ARG_DB },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "rest", required_argument, NULL, ARG_REST },
                { "bus", required_argument, NULL, ARG_BUS },
                { "plugin-dir", required_argument, NULL, ARG_PLUGIN_DIR },
                { "debug", no_argument, NULL, 'd' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "check-config", no_argument, NULL, ARG_CHECK_CONFIG },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "c:dh", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        cli->config_path = optarg;
                        break;
                case ARG_DB:
                        cli->db = optarg;
                        break;
                case ARG_STATE_DIR:
                        cli->state_dir = optarg;
                        break;
                case ARG_REST:
                        cli->rest = optarg;
                        break;
                case ARG_BUS:
                        cli->bus = optarg;
                        break;
                case ARG_PLUGIN_DIR:
                        cli->plugin_dir = optarg;
                        break;
                case 'd':
                        cli->debug = true;
                        break;
                case ARG_CHECK_CONFIG:
                        cli->check_config = true;
                        break;
                case ARG_VERSION:
                        printf("smpgwd %s\n", PACKAGE_VERSION);
                        return 0;
                case 'h':
                        help();
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "smpgwd: unexpected argument '%s' (see --help)\n", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

static int apply_cli(struct config *c, const struct cli *cli) {
        int r = 0;
        if (cli->state_dir)
                r = config_set_string(&c->state_dir, cli->state_dir);
        if (r >= 0 && cli->db)
                r = config_set_string(&c->db_path, cli->db);
        if (r >= 0 && cli->plugin_dir)
                r = config_set_string(&c->plugin_dir, cli->plugin_dir);
        if (r >= 0 && cli->rest) {
                if (strcmp(cli->rest, "off") == 0)
                        c->rest_enabled = false;
                else {
                        c->rest_enabled = true;
                        r = config_set_string(&c->rest_listen, cli->rest);
                }
        }
        if (r >= 0 && cli->bus) {
                r = config_set_bus(c, cli->bus);
                if (r == -EINVAL)
                        return log_error_errno(r, "--bus: system, session, none or a D-Bus address, not '%s'",
                                               cli->bus);
        }
        if (cli->debug)
                c->log_debug = true;
        return r;
}

static int on_sigterm(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct manager *m = userdata;
        log_info("Stopping (signal %u)", si->ssi_signo);
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Stopping: checkpointing jobs");
        manager_stop(m);
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct manager *m = userdata;
        uint64_t now = 0;
        char msg[64];

        (void) sd_event_now(sd_event_source_get_event(s), CLOCK_MONOTONIC, &now);
        snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, now);
        (void) sd_notify(false, msg);
        /* manager_reload() logs why it refused. */
        if (manager_reload(m) < 0)
                (void) sd_notify(false, "READY=1\nSTATUS=Running; the last reload was refused (see the log)");
        else
                (void) sd_notify(false, "READY=1\nSTATUS=Running");
        return 0;
}

static int run(int argc, char *argv[]) {
        _cleanup_(config_freep) struct config *config = NULL;
        _cleanup_(manager_freep) struct manager *m = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        struct cli cli = {};
        int r;

        log_setup(LOG_INFO);
        r = parse_argv(argc, argv, &cli);
        if (r <= 0)
                return r;
        r = config_load(cli.config_path, cli.config_path != NULL, &config);
        if (r < 0)
                return r;
        r = apply_cli(config, &cli);
        if (r < 0)
                return r;
        log_setup(config->log_debug ? LOG_DEBUG : LOG_INFO);
        if (cli.check_config) {
                /* `systemctl reload` runs this before its SIGHUP (the
                 * unit's first ExecReload=): a configuration that would be
                 * refused fails the reload, with the reason in the journal
                 * and in `systemctl status`, instead of a reload that
                 * exits 0 and is refused later in the log. */
                r = manager_check_config(config);
                if (r < 0)
                        return r;
                printf("%s: valid\n",
                       config->config_path ? config->config_path : "no configuration file, the built-in defaults");
                return 0;
        }
        /* Peers that hang up (an HTTP client gone, a BLE link fd closed)
         * must not kill us. */
        (void) signal(SIGPIPE, SIG_IGN);

        r = sd_event_default(&event);
        if (r < 0)
                return log_error_errno(r, "Cannot create the event loop: %m");
        r = manager_new(event, TAKE_PTR(config), &m);
        if (r < 0)
                return r;
        r = sd_event_add_signal(event, NULL, SIGTERM | SD_EVENT_SIGNAL_PROCMASK, on_sigterm, m);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT | SD_EVENT_SIGNAL_PROCMASK, on_sigterm, m);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGHUP | SD_EVENT_SIGNAL_PROCMASK, on_sighup, m);
        if (r < 0)
                return log_error_errno(r, "Cannot watch signals: %m");

        r = manager_start(m);
        if (r < 0) {
                (void) sd_notifyf(false, "ERRNO=%d\nSTATUS=Failed to start: %s", -r, strerror(-r));
                return r;
        }
        log_info("smpgwd %s running: state %s, REST %s, D-Bus %s", PACKAGE_VERSION, m->config->state_dir,
                 m->config->rest_enabled ? m->config->rest_listen : "off",
                 m->config->bus == CONFIG_BUS_NONE ? "off" : "on");
        (void) sd_notifyf(false, "READY=1\nSTATUS=Running: %zu devices, %zu images", m->n_devices, m->n_images);

        r = manager_run(m);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}

int main(int argc, char *argv[]) {
        int r = run(argc, argv);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
