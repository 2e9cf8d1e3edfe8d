/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * /etc/smpgw/smpgwd.conf, read with inih.  One table lists every key with
 * its type and limits, so the parser, the defaults and doc/smpgwd.conf.md
 * cannot drift far apart: a key that is not in the table is an error
 * (a typo must not silently leave a default in place).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <ini.h>

#include "config.h"
#include "log.h"
#include "smpgw/smp-transport.h"   /* smp_strv_free() */
#include "util.h"

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
        K("jobs", "attempts", KEY_UINT, job_attempts, 1, 100),
        K("jobs", "retry_delay", KEY_SECONDS, job_retry_delay_usec, 1, 86400),
        K("jobs", "retry_delay_max", KEY_SECONDS, job_retry_delay_max_usec, 1, 7 * 86400),
        K("jobs", "mode", KEY_MODE, job_mode, 0, 0),
        K("jobs", "swap_timeout", KEY_SECONDS, job_swap_timeout_usec, 5, 3600),
        K("jobs", "keep", KEY_UINT, job_keep, 10, 10000000),
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
        c->rest_page_max = 1000;
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
        c->job_keep = 10000;
        if (config_set_string(&c->state_dir, SMPGWD_STATE_DIR_DEFAULT) < 0 ||
            config_set_string(&c->rest_listen, "127.0.0.1:8080") < 0)
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

/* Splits on whitespace and commas; a list key given again replaces the
 * list (like systemd: later assignments win), an empty value clears it. */
static int parse_list(const char *v, char ***list, size_t *n) {
        char **out = NULL;
        size_t count = 0;
        const char *p = v;

        while (*p) {
                p += strspn(p, " \t,");
                size_t len = strcspn(p, " \t,");
                if (len == 0)
                        break;
                char **grown = realloc(out, (count + 2) * sizeof(char *));
                if (!grown) {
                        smp_strv_free(out);
                        return -ENOMEM;
                }
                out = grown;
                out[count] = strndup(p, len);
                if (!out[count]) {
                        smp_strv_free(out);
                        return -ENOMEM;
                }
                out[++count] = NULL;
                p += len;
        }
        smp_strv_free(*list);
        *list = out;
        *n = count;
        return 0;
}

struct parse_state {
        struct config *config;
        const char *path;
        int error;
};

static int config_set_key(struct config *c, const struct config_key *k, const char *value, const char *path) {
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
                        log_error("%s: [%s] %s=%s is out of range %llu..%llu", path, k->section, k->name, value,
                                  (unsigned long long) k->min, (unsigned long long) k->max);
                        return -ERANGE;
                }
                if (k->type == KEY_UINT)
                        *(unsigned *) (base + k->offset) = (unsigned) n;
                else if (k->type == KEY_SECONDS)
                        *(uint64_t *) (base + k->offset) = n * 1000000ull;
                else
                        *(uint64_t *) (base + k->offset) = n;
                return 0;
        case KEY_LIST:
                return parse_list(value, (char ***) (base + k->offset), (size_t *) (base + k->count_offset));
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
        log_error("%s: [%s] %s: invalid value '%s' (see doc/smpgwd.conf.md)", path, k->section, k->name, value);
        return -EINVAL;
}

static int config_ini_handler(void *userdata, const char *section, const char *name, const char *value) {
        struct parse_state *st = userdata;

        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++) {
                const struct config_key *k = &config_keys[i];
                if (strcmp(k->section, section) || strcmp(k->name, name))
                        continue;
                int r = config_set_key(st->config, k, value, st->path);
                if (r < 0) {
                        st->error = r;
                        return 0;
                }
                return 1;
        }
        log_error("%s: unknown key '%s' in section [%s]", st->path, name, section);
        st->error = -EINVAL;
        return 0;
}

/* Opens the configuration file.  Only a regular file is a configuration:
 * fopen() opens a directory too, and reading it yields no line and no
 * error, so a directory where the file was (or a wrong --config) would
 * silently mean "every default", authentication included.  A FIFO or a
 * device would be read on the loop at the mercy of its writer.  The one
 * exception is /dev/null, the usual way to say "no file": *ret is then
 * NULL.  -EISDIR for a directory, -EINVAL for anything else that is not
 * a regular file.  O_NONBLOCK keeps the open itself from waiting for a
 * FIFO's writer; it means nothing for a regular file. */
static int config_open(const char *path, FILE **ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        struct stat st;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)) {
                *ret = NULL;
                return 0;
        }
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        FILE *f = fdopen(fd, "re");
        if (!f)
                return -errno;
        TAKE_FD(fd);
        *ret = f;
        return 0;
}

int config_load(const char *path, bool path_explicit, struct config **ret) {
        _cleanup_(config_freep) struct config *c = calloc(1, sizeof(*c));
        int r;

        if (!c)
                return -ENOMEM;
        r = config_defaults(c);
        if (r < 0)
                return r;
        if (!path)
                path = SMPGWD_CONFIG_PATH_DEFAULT;

        FILE *f = NULL;
        r = config_open(path, &f);
        if (r == -ENOENT && !path_explicit)
                log_debug("No configuration file %s, using the defaults", path);
        else if (r == -EISDIR || r == -EINVAL)
                return log_error_errno(r, "Cannot use configuration %s: it is a %s, not a regular file", path,
                                       r == -EISDIR ? "directory" : "special file");
        else if (r < 0)
                return log_error_errno(r, "Cannot read configuration %s: %m", path);
        else {
                if (f) {
                        struct parse_state st = { .config = c, .path = path };
                        int line = ini_parse_file(f, config_ini_handler, &st);
                        fclose(f);
                        if (st.error < 0)
                                return log_error_errno(st.error, "%s:%d: configuration refused", path, line);
                        if (line != 0)
                                return log_error_errno(-EINVAL, "%s:%d: syntax error", path, line);
                }
                r = config_set_string(&c->config_path, path);
                if (r < 0)
                        return r;
        }
        if (!!c->rest_tls_cert != !!c->rest_tls_key)
                return log_error_errno(-EINVAL, "%s: [rest] tls_cert and tls_key go together", path);
        *ret = TAKE_PTR(c);
        return 0;
}
