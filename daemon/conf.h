/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwd's configuration: SMPGWD_CONFIG_PATH_DEFAULT (/etc/smpgw/smpgwd.conf
 * for a --prefix=/usr build; INI), then command-line flags on top.  Every
 * key, its default and its limits are documented in doc/smpgwd.conf.md;
 * config_load() refuses values out of range, lines too long, malformed
 * connection strings and discovery ranges with the file, line and key in
 * the message.  Every file the configuration names is read through
 * config_read_file(), with a cap on its size (doc/smpgwd.conf.md).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The build's config.h (the top-level meson.build): PACKAGE_VERSION,
 * HAVE_REST, the paths. */
#include "config.h"
#include "smpgw/smp-update.h"

/* SMPGWD_CONFIG_PATH_DEFAULT, <sysconfdir>/smpgw/smpgwd.conf, comes from
 * the build's config.h.  The state directory does
 * not follow the prefix: it is the unit's StateDirectory=smpgw, which
 * systemd always puts in /var/lib. */
#define SMPGWD_STATE_DIR_DEFAULT "/var/lib/smpgw"

enum config_bus {
        CONFIG_BUS_NONE,     /* --bus none: no D-Bus API */
        CONFIG_BUS_SYSTEM,
        CONFIG_BUS_SESSION,
        CONFIG_BUS_ADDRESS,  /* bus_address */
};

struct config {
        char *config_path;             /* the file read, NULL when none */

        /* [daemon] */
        char *state_dir;               /* state_dir= / --state-dir */
        char *db_path;                 /* db= / --db; default <state_dir>/smpgw.db */
        char *plugin_dir;              /* plugin_dir= / --plugin-dir; NULL: built-in */
        uint64_t flush_interval_usec;  /* flush_interval= seconds (default 2) */
        bool log_debug;                /* log_level=debug */

        /* [dbus] */
        enum config_bus bus;           /* bus= / --bus system|session|none|ADDRESS */
        char *bus_address;

        /* [rest] */
        bool rest_enabled;             /* enabled= (default true) */
        char *rest_listen;             /* listen= / --rest, ADDR:PORT (default 127.0.0.1:8080) */
        char *rest_tokens_file;        /* tokens_file=: one token per line; NULL: no auth */
        char *rest_tls_cert;           /* tls_cert=, tls_key=: PEM files; both or neither */
        char *rest_tls_key;
        uint64_t rest_max_body;        /* max_body= bytes of a JSON request (default 65536) */
        unsigned rest_max_connections; /* max_connections= (default 64) */
        uint64_t rest_timeout_usec;    /* timeout= seconds an idle connection is kept (default 60) */
        unsigned rest_page_max;        /* page_max= largest ?limit= (default 1000) */

        /* [images] */
        char **image_keys;             /* keys=: public key files (PEM/DER); signature required when set */
        size_t n_image_keys;
        uint64_t image_max_size;       /* max_size= bytes (default 16 MiB) */
        unsigned max_images;           /* max_count= (default 256) */

        /* [devices] */
        char **devices;                /* add=: connection strings added at start (space separated) */
        size_t n_devices;
        unsigned max_devices;          /* max_count= (default 10000) */
        uint64_t absent_after_usec;    /* absent_after= seconds not seen (default 600) */
        uint64_t reprobe_usec;         /* reprobe= seconds between probes of a present device (default 3600) */
        unsigned max_probes;           /* max_probes= probes at once (default 4) */
        uint64_t probe_timeout_usec;   /* probe_timeout= seconds per request (default 5) */

        /* [discovery] */
        bool discovery_enabled;        /* enabled= (default true) */
        char **discover_udp;           /* udp=: ranges "HOST:PORT[-PORT]" or "A.B.C.D-A.B.C.E:PORT[-PORT]" */
        size_t n_discover_udp;
        char **discover_coap;          /* coap=: the same, probed with CoAP */
        size_t n_discover_coap;
        bool discover_coap_multicast;  /* coap_multicast= (default false) */
        bool discover_ble;             /* ble= (default false) */
        char **ble_adapters;           /* ble_adapters=: hciN names; empty: every adapter */
        size_t n_ble_adapters;
        uint64_t discovery_interval_usec; /* interval= seconds between rounds (default 60) */

        /* [jobs] */
        unsigned jobs_max_running;     /* max_running= (default 4) */
        unsigned jobs_max_running_ble; /* max_running_ble= etc.: per transport (defaults ble 2, serial 1, others = max_running) */
        unsigned jobs_max_running_serial;
        unsigned jobs_max_running_udp;
        unsigned jobs_max_running_coap;
        unsigned job_attempts;         /* attempts= (default 3) */
        uint64_t job_retry_delay_usec; /* retry_delay= seconds, doubled per attempt (default 10) */
        uint64_t job_retry_delay_max_usec; /* retry_delay_max= (default 600) */
        enum smp_update_mode job_mode; /* mode= (default test-and-confirm) */
        uint64_t job_swap_timeout_usec;/* swap_timeout= seconds (default 120) */
        uint64_t job_erase_timeout_usec; /* erase_timeout= seconds (default 40): the first chunk's answer */
        unsigned job_keep;             /* keep= finished jobs kept (default 10000), oldest deleted */
        /* max_running_ble_adapter= links per BLE adapter (default 7), learned
         * lower when the controller refuses a connection (job-slots.c) */
        unsigned jobs_max_running_ble_adapter;
        uint64_t job_swap_estimate_usec; /* swap_estimate= seconds (default 10): before any is learned */
        /* hold_slot_during_reboot= (default false): the old way, a job keeps
         * its slot through the device's swap and reboot (for comparison) */
        bool job_hold_slot_during_reboot;

        /* [rollouts]: how many finished rollouts (and distributions) are kept
         * (daemon/rollout-prune.h) */
        unsigned rollout_keep_finished;          /* keep_finished= (default 100), the oldest deleted */
        uint64_t rollout_keep_finished_age_usec; /* keep_finished_age= seconds; 0 (default): no age bound */

        /* [mesh]: distributions a rollout starts for its mesh targets (doc/mesh-dfu.md) */
        uint64_t mesh_poll_min_usec; /* poll_min= seconds between polls of the Distributor at first (default 2) */
        uint64_t mesh_poll_max_usec; /* poll_max= seconds they double up to while nothing moves (default 30) */
        unsigned mesh_rate;          /* rate= BLOB multicast bytes/s the plan assumes before a distribution
                                      * through that Distributor measured one (default 1000) */

        /* [hawkbit]: the Eclipse hawkBit DDI gateway client (doc/hawkbit.md) */
        bool hawkbit_enabled;           /* enabled= (default false) */
        char *hawkbit_server;           /* server=: http(s)://host[:port][/path], no trailing tenant */
        char *hawkbit_tenant;           /* tenant= (default DEFAULT) */
        char *hawkbit_token_file;       /* gateway_token_file=: the tenant's gateway security token */
        uint64_t hawkbit_poll_min_usec; /* poll_min= seconds: the shortest sleep taken from the server (default 10) */
        uint64_t hawkbit_poll_max_usec; /* poll_max= seconds: the longest sleep, and the error backoff's cap (default
                                           3600) */
        uint64_t hawkbit_start_spread_usec; /* start_spread= seconds the first polls are spread over (default 60) */
        char **hawkbit_expose;              /* expose=: all, transport:SCHEME, name:GLOB, id:N (default all) */
        size_t n_hawkbit_expose;
        char *hawkbit_id_prefix;       /* controller_id_prefix= (default "smpgw-") */
        char *hawkbit_id_scheme;       /* controller_id= id|address (default id) */
        unsigned hawkbit_max_requests; /* max_requests= HTTP requests in flight (default 8) */
        uint64_t hawkbit_timeout_usec; /* timeout= seconds per request (default 30; downloads: per stall) */
        bool hawkbit_attributes;       /* attributes= answer configData requests (default true) */
};

/* Caps on what is read (doc/smpgwd.conf.md, "Files"). */
#define CONFIG_FILE_MAX (1024u * 1024u)      /* the configuration file */
#define CONFIG_LINE_MAX 4096u                /* one line of it */
#define CONFIG_TOKENS_FILE_MAX (64u * 1024u) /* [rest] tokens_file */
#define CONFIG_TOKEN_MAX 4096u               /* one token */
#define CONFIG_KEY_FILE_MAX (64u * 1024u)    /* one [images] keys= file */
#define CONFIG_PEM_FILE_MAX (1024u * 1024u)  /* [rest] tls_cert, tls_key */
#define CONFIG_GATEWAY_TOKEN_FILE_MAX 4096u  /* [hawkbit] gateway_token_file */

/* Reads a whole file of at most max bytes into a NUL-terminated buffer.
 * Only a regular file is read (/dev/null reads as empty): -EISDIR for a
 * directory, -EINVAL for a FIFO, socket or device, -EFBIG past max (also
 * when the file grows while it is read).  Never blocks on a FIFO. */
int config_read_file(const char *path, size_t max, char **ret, size_t *ret_size);
/* A sentence for config_read_file()'s errors ("it is a directory, ..."). */
const char *config_read_error(int r);

/* A configuration with every default. */
int config_new(struct config **ret);
/* Parses INI text into c (path names it in errors, which are logged with
 * the line).  Lines of at most CONFIG_LINE_MAX bytes; list keys add to
 * the list on each line. */
int config_parse(struct config *c, const char *path, const char *text, size_t size);
/* What only the whole configuration can tell (tls_cert with tls_key). */
int config_check(const struct config *c, const char *path);

/* The tokens file: one token per line, '#' comments, blank lines;
 * white space around a token is not part of it.  fn gets each token
 * (not NUL-terminated); its error stops the parse.  Errors are logged
 * with path:line, never with the token. */
typedef int (*config_token_fn)(const char *token, size_t len, void *userdata);
int config_tokens_parse(const char *path, const char *text, size_t size, config_token_fn fn, void *userdata);
/* config_read_file(path, CONFIG_TOKENS_FILE_MAX) and the above; the
 * file's bytes are wiped before it returns.  Logs its errors. */
int config_tokens_load(const char *path, config_token_fn fn, void *userdata);

/* Defaults, then the file (NULL: the default path, which may be missing;
 * an explicit path must exist).  Errors are logged. */
int config_load(const char *path, bool path_explicit, struct config **ret);
struct config *config_free(struct config *c);
/* The per-transport limit on running jobs. */
unsigned config_jobs_max_running_for(const struct config *c, const char *transport);
/* --bus value: system, session, none or a D-Bus address. */
int config_set_bus(struct config *c, const char *value);
int config_set_string(char **field, const char *value);
