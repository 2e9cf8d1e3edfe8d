/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * /etc/smpgw/smpgwd.conf, and the files it names.  One table lists every
 * key with its type and limits, so the parser, the defaults and
 * doc/smpgwd.conf.md cannot drift far apart: a key that is not in the
 * table is an error (a typo must not silently leave a default in place).
 *
 * The INI reader is our own, not inih: Debian's libinih is built with
 * 200-byte lines (INI_MAX_LINE is compile-time), splits a longer line
 * into pieces it then parses as lines of their own (a long comment
 * could set a key), and takes an indented line for the continuation of
 * the key above.  Here a file is read whole, bounded, and a line too
 * long is an error with its file and line.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "conf.h"
#include "discovery-range.h"
#include "log.h"
#include "smpgw/smp-transport.h"   /* smp_strv_free() */
#include "smpgw/smp-upload.h"      /* SMP_UPLOAD_FIRST_TIMEOUT_DEFAULT_USEC */
#include "smpgwd-limits.h"
#include "util.h"

/* A section name; the longest real one is "discovery". */
#define CONFIG_SECTION_MAX 32u

enum key_type {
        KEY_STRING,      /* char * */
        KEY_BOOL,        /* bool */
        KEY_UINT,        /* unsigned, min..max */
        KEY_SECONDS,     /* uint64_t µs, given in seconds min..max */
        KEY_BYTES,       /* uint64_t, min..max, with an optional K/M suffix */
        KEY_LIST,        /* char ** + size_t n (the next field), whitespace or comma separated */
        KEY_MODE,        /* enum smp_update_mode */
        KEY_BUS,         /* enum config_bus + address */
};

struct config_key {
        const char *section, *name;
        enum key_type type;
        size_t offset;
        size_t count_offset;   /* KEY_LIST: where the count goes */
        uint64_t min, max;
};

#define K(sec, key, t, field, lo, hi) { sec, key, t, offsetof(struct config, field), 0, lo, hi }
#define L(sec, key, field, n) { sec, key, KEY_LIST, offsetof(struct config, field), offsetof(struct config, n), 0, 0 }

static const struct config_key config_keys[] = {
        K("daemon", "state_dir", KEY_STRING, state_dir, 0, 0),
        K("daemon", "db", KEY_STRING, db_path, 0, 0),
        K("daemon", "plugin_dir", KEY_STRING, plugin_dir, 0, 0),
        K("daemon", "flush_interval", KEY_SECONDS, flush_interval_usec, 1, 60),
        K("daemon", "log_level", KEY_STRING, config_path, 0, 0), /* special-cased below */
        K("dbus", "bus", KEY_BUS, bus, 0, 0),
        K("rest", "enabled", KEY_BOOL, rest_enabled, 0, 0),
        K("rest", "listen", KEY_STRING, rest_listen, 0, 0),
        K("rest", "tokens_file", KEY_STRING, rest_tokens_file, 0, 0),
        K("rest", "tls_cert", KEY_STRING, rest_tls_cert, 0, 0),
        K("rest", "tls_key", KEY_STRING, rest_tls_key, 0, 0),
        K("rest", "max_body", KEY_BYTES, rest_max_body, 1024, 16u << 20),
        K("rest", "max_connections", KEY_UINT, rest_max_connections, 1, 4096),
        K("rest", "timeout", KEY_SECONDS, rest_timeout_usec, 1, 3600),
        K("rest", "page_max", KEY_UINT, rest_page_max, 1, 100000),
        L("images", "keys", image_keys, n_image_keys),
        K("images", "max_size", KEY_BYTES, image_max_size, 4096, 1u << 30),
        K("images", "max_count", KEY_UINT, max_images, 1, 100000),
        L("devices", "add", devices, n_devices),
        K("devices", "max_count", KEY_UINT, max_devices, 1, 1000000),
        K("devices", "absent_after", KEY_SECONDS, absent_after_usec, 10, 30 * 86400),
        K("devices", "reprobe", KEY_SECONDS, reprobe_usec, 10, 30 * 86400),
        K("devices", "max_probes", KEY_UINT, max_probes, 1, 256),
        K("devices", "probe_timeout", KEY_SECONDS, probe_timeout_usec, 1, 120),
        K("discovery", "enabled", KEY_BOOL, discovery_enabled, 0, 0),
        L("discovery", "udp", discover_udp, n_discover_udp),
        L("discovery", "coap", discover_coap, n_discover_coap),
        K("discovery", "coap_multicast", KEY_BOOL, discover_coap_multicast, 0, 0),
        K("discovery", "ble", KEY_BOOL, discover_ble, 0, 0),
        L("discovery", "ble_adapters", ble_adapters, n_ble_adapters),
        K("discovery", "interval", KEY_SECONDS, discovery_interval_usec, 1, 86400),
        K("jobs", "max_running", KEY_UINT, jobs_max_running, 1, 1024),
        K("jobs", "max_running_ble", KEY_UINT, jobs_max_running_ble, 1, 1024),
        K("jobs", "max_running_serial", KEY_UINT, jobs_max_running_serial, 1, 1024),
        K("jobs", "max_running_udp", KEY_UINT, jobs_max_running_udp, 1, 1024),
        K("jobs", "max_running_coap", KEY_UINT, jobs_max_running_coap, 1, 1024),
        K("jobs", "attempts", KEY_UINT, job_attempts, JOB_ATTEMPTS_MIN, JOB_ATTEMPTS_MAX),
        K("jobs", "retry_delay", KEY_SECONDS, job_retry_delay_usec, 1, 86400),
        K("jobs", "retry_delay_max", KEY_SECONDS, job_retry_delay_max_usec, 1, 7 * 86400),
        K("jobs", "mode", KEY_MODE, job_mode, 0, 0),
        K("jobs", "swap_timeout", KEY_SECONDS, job_swap_timeout_usec, 5, 3600),
        K("jobs", "erase_timeout", KEY_SECONDS, job_erase_timeout_usec, 1, 300),
        K("jobs", "keep", KEY_UINT, job_keep, 10, 10000000),
        K("jobs", "max_running_ble_adapter", KEY_UINT, jobs_max_running_ble_adapter, 1, 64),
        K("jobs", "swap_estimate", KEY_SECONDS, job_swap_estimate_usec, 1, 3600),
        K("jobs", "hold_slot_during_reboot", KEY_BOOL, job_hold_slot_during_reboot, 0, 0),
        K("rollouts", "keep_finished", KEY_UINT, rollout_keep_finished, 1, 100000),
        K("rollouts", "keep_finished_age", KEY_SECONDS, rollout_keep_finished_age_usec, 0, 3650 * 86400),
        K("mesh", "poll_min", KEY_SECONDS, mesh_poll_min_usec, 1, 3600),
        K("mesh", "poll_max", KEY_SECONDS, mesh_poll_max_usec, 1, 3600),
        K("mesh", "rate", KEY_UINT, mesh_rate, 1, 1000000),
        K("hawkbit", "enabled", KEY_BOOL, hawkbit_enabled, 0, 0),
        K("hawkbit", "server", KEY_STRING, hawkbit_server, 0, 0),
        K("hawkbit", "tenant", KEY_STRING, hawkbit_tenant, 0, 0),
        K("hawkbit", "gateway_token_file", KEY_STRING, hawkbit_token_file, 0, 0),
        K("hawkbit", "poll_min", KEY_SECONDS, hawkbit_poll_min_usec, 1, 86400),
        K("hawkbit", "poll_max", KEY_SECONDS, hawkbit_poll_max_usec, 1, 7 * 86400),
        K("hawkbit", "start_spread", KEY_SECONDS, hawkbit_start_spread_usec, 1, 86400),
        L("hawkbit", "expose", hawkbit_expose, n_hawkbit_expose),
        K("hawkbit", "controller_id_prefix", KEY_STRING, hawkbit_id_prefix, 0, 0),
        K("hawkbit", "controller_id", KEY_STRING, hawkbit_id_scheme, 0, 0),
        K("hawkbit", "max_requests", KEY_UINT, hawkbit_max_requests, 1, 256),
        K("hawkbit", "timeout", KEY_SECONDS, hawkbit_timeout_usec, 1, 3600),
        K("hawkbit", "attributes", KEY_BOOL, hawkbit_attributes, 0, 0),
};

int config_set_string(char **field, const char *value) {
        char *copy = strdup(value);
        if (!copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

int config_set_bus(struct config *c, const char *value) {
        if (strcmp(value, "system") == 0)
                c->bus = CONFIG_BUS_SYSTEM;
        else if (strcmp(value, "session") == 0)
                c->bus = CONFIG_BUS_SESSION;
        else if (strcmp(value, "none") == 0)
                c->bus = CONFIG_BUS_NONE;
        else if (strchr(value, ':') && strchr(value, '=')) {
                /* A D-Bus address: "unix:path=/run/...,guid=..." */
                int r = config_set_string(&c->bus_address, value);
                if (r < 0)
                        return r;
                c->bus = CONFIG_BUS_ADDRESS;
        } else
                return -EINVAL;
        return 0;
}

unsigned config_jobs_max_running_for(const struct config *c, const char *transport) {
        unsigned v = 0;
        if (strcmp(transport, "ble") == 0)
                v = c->jobs_max_running_ble;
        else if (strcmp(transport, "serial") == 0)
                v = c->jobs_max_running_serial;
        else if (strcmp(transport, "udp") == 0)
                v = c->jobs_max_running_udp;
        else if (strcmp(transport, "coap") == 0)
                v = c->jobs_max_running_coap;
        return v ? v : c->jobs_max_running;
}

struct config *config_free(struct config *c) {
        if (!c)
                return NULL;
        free(c->config_path);
        free(c->state_dir);
        free(c->db_path);
        free(c->plugin_dir);
        free(c->bus_address);
        free(c->rest_listen);
        free(c->rest_tokens_file);
        free(c->rest_tls_cert);
        free(c->rest_tls_key);
        smp_strv_free(c->image_keys);
        smp_strv_free(c->devices);
        smp_strv_free(c->discover_udp);
        smp_strv_free(c->discover_coap);
        smp_strv_free(c->ble_adapters);
        free(c->hawkbit_server);
        free(c->hawkbit_tenant);
        free(c->hawkbit_token_file);
        smp_strv_free(c->hawkbit_expose);
        free(c->hawkbit_id_prefix);
        free(c->hawkbit_id_scheme);
        free(c);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct config *, config_free);

static int config_defaults(struct config *c) {
        c->flush_interval_usec = 2 * 1000000ull;
        c->bus = CONFIG_BUS_SYSTEM;
        c->rest_enabled = true;
        c->rest_max_body = 65536;
        c->rest_max_connections = 64;
        c->rest_timeout_usec = 60 * 1000000ull;
        c->rest_page_max = PAGE_MAX_DEFAULT;
        c->image_max_size = 16u << 20;
        c->max_images = 256;
        c->max_devices = 10000;
        c->absent_after_usec = 600 * 1000000ull;
        c->reprobe_usec = 3600 * 1000000ull;
        c->max_probes = 4;
        c->probe_timeout_usec = 5 * 1000000ull;
        c->discovery_enabled = true;
        c->discovery_interval_usec = 60 * 1000000ull;
        c->jobs_max_running = 4;
        c->jobs_max_running_ble = 2;
        c->jobs_max_running_serial = 1;
        c->job_attempts = 3;
        c->job_retry_delay_usec = 10 * 1000000ull;
        c->job_retry_delay_max_usec = 600 * 1000000ull;
        c->job_mode = SMP_UPDATE_TEST_AND_CONFIRM;
        c->job_swap_timeout_usec = 120 * 1000000ull;
        c->job_erase_timeout_usec = SMP_UPLOAD_FIRST_TIMEOUT_DEFAULT_USEC;
        c->job_keep = 10000;
        c->jobs_max_running_ble_adapter = 7;
        c->job_swap_estimate_usec = 10 * 1000000ull;
        c->job_hold_slot_during_reboot = false;
        c->rollout_keep_finished = 100;
        c->rollout_keep_finished_age_usec = 0;
        c->mesh_poll_min_usec = 2 * 1000000ull; /* distribution.h's defaults */
        c->mesh_poll_max_usec = 30 * 1000000ull;
        c->mesh_rate = 1000; /* DISTRIBUTION_MESH_RATE_DEFAULT */
        c->hawkbit_poll_min_usec = 10 * 1000000ull;
        c->hawkbit_poll_max_usec = 3600 * 1000000ull;
        c->hawkbit_start_spread_usec = 60 * 1000000ull;
        c->hawkbit_max_requests = 8;
        c->hawkbit_timeout_usec = 30 * 1000000ull;
        c->hawkbit_attributes = true;
        if (config_set_string(&c->state_dir, SMPGWD_STATE_DIR_DEFAULT) < 0 ||
            config_set_string(&c->rest_listen, "127.0.0.1:8080") < 0 ||
            config_set_string(&c->hawkbit_tenant, "DEFAULT") < 0 ||
            config_set_string(&c->hawkbit_id_prefix, "smpgw-") < 0 ||
            config_set_string(&c->hawkbit_id_scheme, "id") < 0)
                return -ENOMEM;
        return 0;
}

static int parse_u64(const char *v, uint64_t *ret) {
        char *end;
        if (!*v || *v == '-' || *v == '+')
                return -EINVAL;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (errno || end == v)
                return -EINVAL;
        uint64_t mult = 1;
        if (*end == 'K' || *end == 'k')
                mult = 1024, end++;
        else if (*end == 'M')
                mult = 1024 * 1024, end++;
        else if (*end == 'G')
                mult = 1024 * 1024 * 1024, end++;
        if (*end)
                return -EINVAL;
        if (n > UINT64_MAX / mult)
                return -ERANGE;
        *ret = n * mult;
        return 0;
}

static int parse_bool(const char *v, bool *ret) {
        if (!strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcasecmp(v, "on"))
                *ret = true;
        else if (!strcmp(v, "0") || !strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcasecmp(v, "off"))
                *ret = false;
        else
                return -EINVAL;
        return 0;
}

/* A connection string as far as the configuration can tell without the
 * transports: "scheme:rest", the scheme lower-case letters and digits,
 * only printable characters, at most SMP_CONN_MAX bytes.  The transport
 * that takes it checks the rest. */
static bool conn_well_formed(const char *s) {
        size_t len = strnlen(s, SMP_CONN_MAX + 1), scheme_len = 0;

        if (len > SMP_CONN_MAX)
                return false;
        while (scheme_len < len && ((s[scheme_len] >= 'a' && s[scheme_len] <= 'z') ||
                                    (scheme_len > 0 && s[scheme_len] >= '0' && s[scheme_len] <= '9')))
                scheme_len++;
        if (scheme_len == 0 || scheme_len + 1 >= len || s[scheme_len] != ':')
                return false;
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) s[i] <= ' ' || s[i] == 0x7f)
                        return false;
        return true;
}

/* Appends the items of v to the list, split on the separators.  A list
 * key may repeat, each line adding to the list; an empty value empties
 * it. */
static int parse_list(const char *v, const char *separators, char ***list, size_t *n) {
        const char *p = v;

        if (!*v) {
                smp_strv_free(*list);
                *list = NULL;
                *n = 0;
                return 0;
        }
        while (*p) {
                p += strspn(p, separators);
                size_t len = strcspn(p, separators);
                if (len == 0)
                        break;
                char **grown = realloc(*list, (*n + 2) * sizeof(char *));
                if (!grown)
                        return -ENOMEM;
                *list = grown;
                grown[*n] = strndup(p, len);
                if (!grown[*n])
                        return -ENOMEM;
                grown[++*n] = NULL;
                p += len;
        }
        return 0;
}

/* Checks the items a list key just added; an error names the item. */
static int check_list_items(const struct config_key *k, char **items, size_t from, size_t to, const char *path,
                            unsigned line) {
        for (size_t i = from; i < to; i++) {
                if (streq(k->name, "add")) {
                        if (!conn_well_formed(items[i])) {
                                log_error("%s:%u: [devices] add: '%.300s' is not a connection string "
                                          "(scheme:address[,option=value...], at most %u bytes)",
                                          path, line, items[i], SMP_CONN_MAX);
                                return -EINVAL;
                        }
                } else if (streq(k->name, "udp") || streq(k->name, "coap")) {
                        struct discovery_range range;
                        int r = discovery_range_parse(items[i], &range);
                        if (r < 0) {
                                log_error("%s:%u: [discovery] %s: bad range '%.300s': %s (HOST:PORT[-PORT] or "
                                          "A.B.C.D-A.B.C.E:PORT[-PORT], at most %u targets)",
                                          path, line, k->name, items[i],
                                          r == -E2BIG ? "too many targets" : "not a range",
                                          DISCOVERY_RANGE_TARGETS_MAX);
                                return r;
                        }
                }
        }
        return 0;
}

static int config_set_key(struct config *c, const struct config_key *k, const char *value, const char *path,
                          unsigned line) {
        char *base = (char *) c;
        uint64_t n;
        int r;

        switch (k->type) {
        case KEY_STRING:
                if (strcmp(k->name, "log_level") == 0) {
                        if (strcmp(value, "debug") == 0)
                                c->log_debug = true;
                        else if (strcmp(value, "info") == 0)
                                c->log_debug = false;
                        else
                                goto invalid;
                        return 0;
                }
                /* An empty string means "unset" for optional paths. */
                if (!*value) {
                        char **f = (char **) (base + k->offset);
                        free(*f);
                        *f = NULL;
                        return 0;
                }
                return config_set_string((char **) (base + k->offset), value);
        case KEY_BOOL:
                if (parse_bool(value, (bool *) (base + k->offset)) < 0)
                        goto invalid;
                return 0;
        case KEY_UINT:
        case KEY_SECONDS:
        case KEY_BYTES:
                r = parse_u64(value, &n);
                if (r < 0 || (k->type != KEY_BYTES && strpbrk(value, "KkMG")))
                        goto invalid;
                if (n < k->min || n > k->max) {
                        log_error("%s:%u: [%s] %s=%.300s is out of range %llu..%llu", path, line, k->section,
                                  k->name, value, (unsigned long long) k->min, (unsigned long long) k->max);
                        return -ERANGE;
                }
                if (k->type == KEY_UINT)
                        *(unsigned *) (base + k->offset) = (unsigned) n;
                else if (k->type == KEY_SECONDS)
                        *(uint64_t *) (base + k->offset) = n * 1000000ull;
                else
                        *(uint64_t *) (base + k->offset) = n;
                return 0;
        case KEY_LIST: {
                char ***list = (char ***) (base + k->offset);
                size_t *count = (size_t *) (base + k->count_offset), before = *count;
                /* Connection strings have options after commas
                 * (serial:/dev/ttyACM0,baud=115200): add= splits on
                 * white space only. */
                r = parse_list(value, streq(k->name, "add") ? " \t" : " \t,", list, count);
                if (r < 0)
                        return log_error_errno(r, "%s:%u: [%s] %s: %m", path, line, k->section, k->name);
                return check_list_items(k, *list, before, *count, path, line);
        }
        case KEY_MODE:
                r = smp_update_mode_from_string(value);
                if (r < 0)
                        goto invalid;
                c->job_mode = (enum smp_update_mode) r;
                return 0;
        case KEY_BUS:
                if (config_set_bus(c, value) < 0)
                        goto invalid;
                return 0;
        }
invalid:
        log_error("%s:%u: [%s] %s: invalid value '%.300s' (see doc/smpgwd.conf.md)", path, line, k->section,
                  k->name, value);
        return -EINVAL;
}

static const struct config_key *config_key_find(const char *section, const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
                if (streq(config_keys[i].section, section) && streq(config_keys[i].name, name))
                        return &config_keys[i];
        return NULL;
}

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Cuts an inline comment: a ';' after white space (as inih did, so
 * "key = value ; note" keeps working; a '#' is a comment only at the
 * start of a line, since values may hold one). */
static void cut_inline_comment(char *s) {
        for (char *p = s; *p; p++)
                if (*p == ';' && p > s && is_blank(p[-1])) {
                        *p = 0;
                        return;
                }
}

static char *strip(char *s) {
        size_t len;

        while (is_blank(*s))
                s++;
        len = strlen(s);
        while (len > 0 && is_blank(s[len - 1]))
                s[--len] = 0;
        return s;
}

/* One line, without its '\n', NUL-terminated, not longer than
 * CONFIG_LINE_MAX.  *section is the current section. */
static int config_parse_line(struct config *c, const char *path, unsigned line, char *text, char *section) {
        char *s = strip(text);

        if (!*s || *s == '#' || *s == ';')
                return 0;
        if (*s == '[') {
                char *close = strchr(s, ']');
                if (!close)
                        return log_error_errno(-EINVAL, "%s:%u: syntax error: '[' without ']'", path, line);
                *close = 0;
                char *rest = strip(close + 1);
                if (*rest && *rest != '#' && *rest != ';')
                        return log_error_errno(-EINVAL, "%s:%u: syntax error: text after the section header",
                                               path, line);
                char *name = strip(s + 1);
                if (strlen(name) >= CONFIG_SECTION_MAX)
                        return log_error_errno(-EINVAL, "%s:%u: unknown section [%.64s...]", path, line, name);
                strcpy(section, name);
                return 0;
        }

        char *eq = strchr(s, '=');
        if (!eq)
                return log_error_errno(-EINVAL, "%s:%u: syntax error: not a [section], key=value or # comment",
                                       path, line);
        *eq = 0;
        char *name = strip(s), *value = eq + 1;
        cut_inline_comment(value);
        value = strip(value);

        const struct config_key *k = config_key_find(section, name);
        if (!k) {
                log_error("%s:%u: unknown key '%.64s' in section [%s]", path, line, name, section);
                return -EINVAL;
        }
        return config_set_key(c, k, value, path, line);
}

int config_parse(struct config *c, const char *path, const char *text, size_t size) {
        _cleanup_free_ char *buf = NULL;
        char section[CONFIG_SECTION_MAX] = "";
        const char *p = text, *end = text + size;
        unsigned line = 0;
        int r;

        if (!c || !path || (!text && size > 0))
                return -EINVAL;
        if (size > CONFIG_FILE_MAX)
                return log_error_errno(-EFBIG, "%s: larger than %u bytes", path, CONFIG_FILE_MAX);
        buf = malloc(CONFIG_LINE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        /* A UTF-8 byte order mark, as some editors write. */
        if (size >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
                p += 3;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t len = (size_t) ((nl ? nl : end) - p);

                line++;
                if (len > CONFIG_LINE_MAX)
                        return log_error_errno(-E2BIG,
                                               "%s:%u: line longer than %u bytes (a list key may be given on "
                                               "several lines, each adding to the list)",
                                               path, line, CONFIG_LINE_MAX);
                if (memchr(p, 0, len))
                        return log_error_errno(-EINVAL, "%s:%u: syntax error: a NUL byte (not a text file?)",
                                               path, line);
                memcpy(buf, p, len);
                buf[len] = 0;
                r = config_parse_line(c, path, line, buf, section);
                if (r < 0)
                        return r;
                p += len + (nl ? 1 : 0);
        }
        return 0;
}

int config_read_file(const char *path, size_t max, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        struct stat st;

        if (!path || !ret || !ret_size)
                return -EINVAL;
        /* O_NONBLOCK: the open itself must not wait for a FIFO's writer
         * (it is refused right after); it means nothing for a regular
         * file. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3))
                max = 0;   /* /dev/null: the usual way to say "nothing" */
        else if (S_ISDIR(st.st_mode))
                return -EISDIR;
        else if (!S_ISREG(st.st_mode))
                return -EINVAL;
        else if ((uint64_t) st.st_size > max)
                return -EFBIG;

        buf = malloc(max + 1);
        if (!buf)
                return -ENOMEM;
        /* Read to EOF, not to st_size: the file may grow in the meantime,
         * and one byte more than max is enough to refuse it. */
        for (;;) {
                ssize_t n = read(fd, buf + size, max + 1 - size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        int r = -errno;
                        explicit_bzero(buf, size);
                        return r;
                }
                if (n == 0)
                        break;
                size += (size_t) n;
                if (size > max) {
                        explicit_bzero(buf, size);
                        return -EFBIG;
                }
        }
        buf[size] = 0;
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

const char *config_read_error(int r) {
        switch (r) {
        case -EISDIR:
                return "it is a directory, not a regular file";
        case -EINVAL:
                return "it is a special file, not a regular file";
        case -EFBIG:
                return "it is larger than the limit for this file";
        default:
                return strerror(-r);
        }
}

int config_tokens_parse(const char *path, const char *text, size_t size, config_token_fn fn, void *userdata) {
        const char *p = text, *end = text + size;
        unsigned line = 0;

        if (!path || (!text && size > 0) || !fn)
                return -EINVAL;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                const char *s = p, *e = nl ? nl : end;

                line++;
                p = nl ? nl + 1 : end;
                while (e > s && isspace((unsigned char) e[-1]))
                        e--;
                while (s < e && isspace((unsigned char) *s))
                        s++;
                if (s == e || *s == '#')
                        continue;
                /* No token is printed: the line number says which. */
                if ((size_t) (e - s) > CONFIG_TOKEN_MAX)
                        return log_error_errno(-E2BIG, "%s:%u: token longer than %u bytes", path, line,
                                               CONFIG_TOKEN_MAX);
                for (const char *c = s; c < e; c++)
                        if ((unsigned char) *c < ' ' && *c != '\t')
                                return log_error_errno(-EINVAL,
                                                       "%s:%u: token with a control character (a NUL, or not a "
                                                       "text file?)",
                                                       path, line);
                int r = fn(s, (size_t) (e - s), userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

int config_tokens_load(const char *path, config_token_fn fn, void *userdata) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r;

        if (!path || !fn)
                return -EINVAL;
        r = config_read_file(path, CONFIG_TOKENS_FILE_MAX, &text, &size);
        if (r == -EFBIG)
                return log_error_errno(r, "Cannot use the tokens file '%s': larger than %u bytes", path,
                                       CONFIG_TOKENS_FILE_MAX);
        if (r < 0)
                return log_error_errno(r, "Cannot use the tokens file '%s': %s", path, config_read_error(r));
        r = config_tokens_parse(path, text, size, fn, userdata);
        /* Tokens are secrets: no copy outlives this call. */
        explicit_bzero(text, size);
        return r;
}

int config_new(struct config **ret) {
        _cleanup_(config_freep) struct config *c = calloc(1, sizeof(*c));
        int r;

        if (!ret)
                return -EINVAL;
        if (!c)
                return -ENOMEM;
        r = config_defaults(c);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

/* What a controllerId and a tenant may hold: hawkBit puts both in URL
 * paths, so only characters that need no escaping. */
static bool hawkbit_id_chars_ok(const char *s) {
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && !strchr("-_.~", *s))
                        return false;
        return true;
}

static int config_check_hawkbit(const struct config *c, const char *path) {
        if (!streq(c->hawkbit_id_scheme ?: "", "id") && !streq(c->hawkbit_id_scheme ?: "", "address"))
                return log_error_errno(-EINVAL, "%s: [hawkbit] controller_id must be 'id' or 'address'", path);
        if (c->hawkbit_id_prefix && (strlen(c->hawkbit_id_prefix) > 32 || !hawkbit_id_chars_ok(c->hawkbit_id_prefix)))
                return log_error_errno(-EINVAL, "%s: [hawkbit] controller_id_prefix: at most 32 of A-Z a-z 0-9 - _ . ~",
                                       path);
        if (!c->hawkbit_tenant || strlen(c->hawkbit_tenant) > 64 || !hawkbit_id_chars_ok(c->hawkbit_tenant))
                return log_error_errno(-EINVAL, "%s: [hawkbit] tenant: 1 to 64 of A-Z a-z 0-9 - _ . ~", path);
        if (c->mesh_poll_min_usec > c->mesh_poll_max_usec)
                return log_error_errno(-EINVAL, "%s: [mesh] poll_min is larger than poll_max", path);
        if (c->hawkbit_poll_min_usec > c->hawkbit_poll_max_usec)
                return log_error_errno(-EINVAL, "%s: [hawkbit] poll_min is larger than poll_max", path);
        for (size_t i = 0; i < c->n_hawkbit_expose; i++) {
                const char *e = c->hawkbit_expose[i];
                if (!streq(e, "all") && !(strncmp(e, "transport:", 10) == 0 && e[10]) &&
                    !(strncmp(e, "name:", 5) == 0 && e[5]) && !(strncmp(e, "id:", 3) == 0 && e[3]))
                        return log_error_errno(-EINVAL,
                                               "%s: [hawkbit] expose: '%.100s' is none of all, transport:SCHEME, "
                                               "name:GLOB, id:N",
                                               path, e);
        }
        if (!c->hawkbit_enabled)
                return 0;
        if (!c->hawkbit_server ||
            (strncmp(c->hawkbit_server, "http://", 7) != 0 && strncmp(c->hawkbit_server, "https://", 8) != 0))
                return log_error_errno(-EINVAL, "%s: [hawkbit] server: an http:// or https:// URL is required", path);
        if (strlen(c->hawkbit_server) > 1024)
                return log_error_errno(-EINVAL, "%s: [hawkbit] server: longer than 1024 bytes", path);
        if (!c->hawkbit_token_file)
                return log_error_errno(-EINVAL, "%s: [hawkbit] gateway_token_file is required", path);
        return 0;
}

int config_check(const struct config *c, const char *path) {
        if (!!c->rest_tls_cert != !!c->rest_tls_key)
                return log_error_errno(-EINVAL, "%s: [rest] tls_cert and tls_key go together", path);
        return config_check_hawkbit(c, path);
}

int config_load(const char *path, bool path_explicit, struct config **ret) {
        _cleanup_(config_freep) struct config *c = NULL;
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r;

        r = config_new(&c);
        if (r < 0)
                return r;
        if (!path)
                path = SMPGWD_CONFIG_PATH_DEFAULT;

        r = config_read_file(path, CONFIG_FILE_MAX, &text, &size);
        if (r == -ENOENT && !path_explicit)
                log_debug("No configuration file %s, using the defaults", path);
        else if (r == -EISDIR || r == -EINVAL)
                return log_error_errno(r, "Cannot use configuration %s: %s", path, config_read_error(r));
        else if (r == -EFBIG)
                return log_error_errno(r, "Cannot use configuration %s: larger than %u bytes", path,
                                       CONFIG_FILE_MAX);
        else if (r < 0)
                return log_error_errno(r, "Cannot read configuration %s: %m", path);
        else {
                r = config_parse(c, path, text, size);
                if (r < 0)
                        return log_error_errno(r, "%s: configuration refused", path);
                r = config_set_string(&c->config_path, path);
                if (r < 0)
                        return r;
        }
        r = config_check(c, path);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}
