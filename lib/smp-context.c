/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The context: its transports (built-in or loaded), each with its
 * instance and host table, the plugin path, the log callback, and the
 * door every connection string goes through (smp_context_parse_conn()).
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context-internal.h"
#include "util.h"

#define LOG_LINE_MAX 1024u

bool scheme_valid(const char *s, size_t len) {
        if (len == 0 || len > SMP_CONN_SCHEME_MAX)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

/* ---- logging ---- */

void context_logv(const struct smp_context *ctx, int level, const char *source, const char *fmt, va_list ap) {
        char line[LOG_LINE_MAX];
        if (!ctx->log_fn || level > ctx->log_max_level)
                return;
        vsnprintf(line, sizeof(line), fmt, ap);
        ctx->log_fn(level, source, line, ctx->log_userdata);
}

void context_log(const struct smp_context *ctx, int level, const char *source, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        context_logv(ctx, level, source, fmt, ap);
        va_end(ap);
}

__attribute__((format(printf, 3, 0))) static void host_logv(const struct smp_host *host, int level, const char *fmt,
                                                            va_list ap) {
        const struct transport_entry *e = (const struct transport_entry *) host;
        context_logv(e->ctx, level, e->transport->name, fmt, ap);
}

static bool host_log_enabled(const struct smp_host *host, int level) {
        const struct transport_entry *e = (const struct transport_entry *) host;
        return e->ctx->log_fn && level <= e->ctx->log_max_level;
}

void smp_context_set_log(struct smp_context *ctx, int max_level, smp_log_fn fn, void *userdata) {
        ctx->log_max_level = max_level;
        ctx->log_fn = fn;
        ctx->log_userdata = userdata;
}

/* ---- the object ---- */

int smp_context_new(struct smp_context **ret) {
        struct smp_context *ctx = calloc(1, sizeof(*ctx));
        if (!ctx)
                return -ENOMEM;
        ctx->n_ref = 1;
        ctx->log_max_level = SMP_LOG_INFO;
        int r = plugin_default_path(&ctx->plugin_path);
        if (r < 0) {
                free(ctx);
                return r;
        }
        *ret = ctx;
        return 0;
}

struct smp_context *smp_context_ref(struct smp_context *ctx) {
        if (ctx)
                ctx->n_ref++;
        return ctx;
}

static void entry_free(struct transport_entry *e) {
        if (e->instance)
                e->transport->instance_free(e->instance);
        if (e->dl)
                dlclose(e->dl); /* RTLD_NODELETE: the code stays */
        free(e);
}

struct smp_context *smp_context_unref(struct smp_context *ctx) {
        if (!ctx || --ctx->n_ref > 0)
                return NULL;
        /* Newest first: nothing depends on an older transport, but the
         * order is then the reverse of setting up, as it should be. */
        for (size_t i = ctx->n_entries; i > 0; i--)
                entry_free(ctx->entries[i - 1]);
        free(ctx->plugin_path);
        free(ctx);
        return NULL;
}

int smp_context_set_plugin_path(struct smp_context *ctx, const char *path) {
        char *copy;
        int r;

        if (!path) {
                r = plugin_default_path(&copy);
                if (r < 0)
                        return r;
        } else {
                if (strlen(path) >= PATH_MAX)
                        return -ENAMETOOLONG;
                /* Every entry absolute: a relative one would depend on
                 * the current directory, not on the configuration. */
                for (const char *p = path;;) {
                        size_t n = strcspn(p, ":");
                        if (n == 0 || p[0] != '/')
                                return -EINVAL;
                        if (!p[n])
                                break;
                        p += n + 1;
                }
                copy = strdup(path);
                if (!copy)
                        return -ENOMEM;
        }
        free(ctx->plugin_path);
        ctx->plugin_path = copy;
        return 0;
}

const char *smp_context_get_plugin_path(const struct smp_context *ctx) {
        return ctx->plugin_path;
}

/* ---- transports ---- */

static struct transport_entry *entry_lookup(struct smp_context *ctx, const char *name) {
        for (size_t i = 0; i < ctx->n_entries; i++)
                if (streq(ctx->entries[i]->transport->name, name))
                        return ctx->entries[i];
        return NULL;
}

static int entry_add(struct smp_context *ctx, const struct smp_transport *t, void *dl, struct transport_entry **ret,
                     char **ret_reason) {
        if (ctx->n_entries >= SMP_CONTEXT_TRANSPORTS_MAX)
                return reason_set(ret_reason, -ENOSPC, "the context holds %u transports already",
                                  SMP_CONTEXT_TRANSPORTS_MAX);
        struct transport_entry *e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->host = (struct smp_host) {
                .abi_version = SMP_TRANSPORT_ABI_VERSION,
                .struct_size = sizeof(struct smp_host),
                .logv = host_logv,
                .log_enabled = host_log_enabled,
        };
        e->ctx = ctx;
        e->transport = t;
        int r = t->instance_new(&e->host, &e->instance);
        if (r < 0) {
                free(e);
                return reason_set(ret_reason, r, "the '%s' transport cannot start: %s", t->name, strerror(-r));
        }
        e->dl = dl;
        ctx->entries[ctx->n_entries++] = e;
        *ret = e;
        return 0;
}

int smp_context_add_transport(struct smp_context *ctx, const struct smp_transport *transport) {
        struct transport_entry *e;

        if (!ctx || !transport || plugin_check_descriptor(transport, NULL) < 0)
                return -EINVAL;
        if (entry_lookup(ctx, transport->name))
                return -EEXIST;
        return entry_add(ctx, transport, NULL, &e, NULL);
}

int context_find_entry(struct smp_context *ctx, const char *scheme, struct transport_entry **ret, char **ret_reason) {
        const struct smp_transport *t;
        void *dl;
        int r;

        if (!ctx || !scheme || !ret)
                return -EINVAL;
        /* The scheme becomes part of a file name: only a plain word may. */
        if (!scheme_valid(scheme, strnlen(scheme, SMP_CONN_SCHEME_MAX + 1)))
                return reason_set(ret_reason, -EINVAL, "'%.*s' is not a transport name (a-z and 0-9, at most %u)",
                                  (int) SMP_CONN_SCHEME_MAX, scheme, SMP_CONN_SCHEME_MAX);
        struct transport_entry *e = entry_lookup(ctx, scheme);
        if (e) {
                *ret = e;
                return 0;
        }
        r = plugin_load(ctx->plugin_path, scheme, &t, &dl, ret_reason);
        if (r < 0)
                return r;
        r = entry_add(ctx, t, dl, ret, ret_reason);
        if (r < 0)
                dlclose(dl);
        return r;
}

int smp_context_find_transport(struct smp_context *ctx, const char *scheme, const struct smp_transport **ret,
                               char **ret_reason) {
        struct transport_entry *e;
        int r = context_find_entry(ctx, scheme, &e, ret_reason);
        if (r < 0)
                return r;
        if (ret)
                *ret = e->transport;
        return 0;
}

static int strcmp_ptr(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int smp_context_list_transports(struct smp_context *ctx, char ***ret) {
        struct name_list l = {};
        int r = 0;

        if (!ctx || !ret)
                return -EINVAL;
        for (size_t i = 0; i < ctx->n_entries && r >= 0; i++)
                if (!ctx->entries[i]->dl)
                        r = name_list_add(&l, ctx->entries[i]->transport->name,
                                          strlen(ctx->entries[i]->transport->name));
        if (r >= 0)
                r = plugin_list(ctx->plugin_path, &l);
        if (r >= 0 && !l.names) {
                /* Nothing found: still a valid, empty, NULL-terminated array. */
                l.names = calloc(1, sizeof(char *));
                if (!l.names)
                        r = -ENOMEM;
        }
        if (r < 0) {
                smp_strv_free(l.names);
                return r;
        }
        qsort(l.names, l.n, sizeof(char *), strcmp_ptr);
        *ret = l.names;
        return (int) l.n;
}

/* ---- connection strings ---- */

/* "a space at the end", "byte 0xe2 (beyond ASCII) at offset 19" */
static int refuse_byte(const char *conn, size_t i, size_t len, char **ret_reason) {
        unsigned char b = (unsigned char) conn[i];
        char what[48], where[32];

        if (b == ' ')
                snprintf(what, sizeof(what), "a space");
        else if (b == '\t')
                snprintf(what, sizeof(what), "a tab");
        else if (b == '\n')
                snprintf(what, sizeof(what), "a newline");
        else if (b == '\r')
                snprintf(what, sizeof(what), "a carriage return");
        else if (b < 0x20 || b == 0x7f)
                snprintf(what, sizeof(what), "control character 0x%02x", b);
        else
                snprintf(what, sizeof(what), "byte 0x%02x (beyond ASCII)", b);
        if (i + 1 == len)
                snprintf(where, sizeof(where), "at the end");
        else if (i == 0)
                snprintf(where, sizeof(where), "at the start");
        else
                snprintf(where, sizeof(where), "at offset %zu", i);
        return reason_set(ret_reason, -EINVAL, "%s %s: connection strings are printable ASCII without spaces", what,
                          where);
}

int smp_context_parse_conn(struct smp_context *ctx, const char *conn, struct smp_conn **ret, char **ret_reason) {
        struct transport_entry *e;
        char scheme[SMP_CONN_SCHEME_MAX + 1];
        int r;

        if (!ctx || !ret)
                return -EINVAL;
        if (!conn || !*conn)
                return reason_set(ret_reason, -EINVAL, "the connection string is empty (SCHEME:ADDRESS, e.g. "
                                  "udp:192.0.2.1:1337)");
        size_t len = strnlen(conn, SMP_CONN_MAX + 1);
        if (len > SMP_CONN_MAX)
                return reason_set(ret_reason, -EINVAL, "longer than %u bytes", SMP_CONN_MAX);
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) conn[i] <= 0x20 || (unsigned char) conn[i] >= 0x7f)
                        return refuse_byte(conn, i, len, ret_reason);

        const char *colon = strchr(conn, ':');
        if (!colon)
                return reason_set(ret_reason, -EINVAL,
                                  "'%s' has no scheme (SCHEME:ADDRESS, e.g. udp:192.0.2.1:1337)", conn);
        size_t n = (size_t) (colon - conn);
        if (n == 0)
                return reason_set(ret_reason, -EINVAL, "no scheme before ':' (SCHEME:ADDRESS, e.g. udp:192.0.2.1:1337)");
        if (!scheme_valid(conn, n))
                return reason_set(ret_reason, -EINVAL, "scheme '%.*s' is not %s", (int) n, conn,
                                  n > SMP_CONN_SCHEME_MAX ? "a transport name (too long)"
                                                          : "a transport name (lower-case letters and digits)");
        memcpy(scheme, conn, n);
        scheme[n] = 0;
        r = context_find_entry(ctx, scheme, &e, ret_reason);
        if (r < 0)
                return r;
        return conn_parse(e, colon + 1, ret, ret_reason);
}

int smp_conn_open_link(const struct smp_conn *conn, sd_event *event, const struct smp_link_callbacks *cb,
                       void *userdata, struct smp_link **ret) {
        if (!conn || !event || !cb || !cb->receive || !ret)
                return -EINVAL;
        struct transport_entry *e = conn_get_entry(conn);
        return e->transport->open(e->instance, event, conn, cb, userdata, ret);
}
