/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Inside libsmpgw: the context's transport table, shared by the context
 * (smp-context.c), the plugin loader (smp-plugin.c), connection strings
 * (smp-conn.c), sessions and discoveries.  Not installed.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>

#include "smpgw/smp-context.h"
#include "smpgw/smp-transport.h"

/* One transport in a context: the descriptor, its instance, and the host
 * table the instance was given.  Allocated on its own so that its
 * address (handed to the plugin as the host) never moves. */
struct transport_entry {
        struct smp_host host;          /* first: the plugin's host pointer is the entry's */
        struct smp_context *ctx;       /* borrowed: the context owns the entry */
        const struct smp_transport *transport;
        struct smp_transport_instance *instance;
        void *dl;                      /* dlopen() handle, NULL for a built-in transport */
};

struct smp_context {
        unsigned n_ref;
        char *plugin_path;
        struct transport_entry *entries[SMP_CONTEXT_TRANSPORTS_MAX];
        size_t n_entries;
        smp_log_fn log_fn;
        void *log_userdata;
        int log_max_level;
};

/* Logs on behalf of source (a transport's name, or "libsmpgw"). */
void context_logv(const struct smp_context *ctx, int level, const char *source, const char *fmt, va_list ap)
        __attribute__((format(printf, 4, 0)));
void context_log(const struct smp_context *ctx, int level, const char *source, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* The entry of scheme, loading the plugin on first use; see
 * smp_context_find_transport(). */
int context_find_entry(struct smp_context *ctx, const char *scheme, struct transport_entry **ret,
                       char **ret_reason);

/* [a-z0-9]+, at most SMP_CONN_SCHEME_MAX. */
bool scheme_valid(const char *s, size_t len);

/* ---- smp-plugin.c: the loader ---- */

/* The default plugin path (see smp-context.h), malloc()ed. */
int plugin_default_path(char **ret);
/* Checks a descriptor against ABI version 2.  -EPROTO with a sentence. */
int plugin_check_descriptor(const struct smp_transport *t, char **ret_reason);
/* Finds smpgw-transport-<scheme>.so in path and dlopen()s it.  -ENOENT /
 * -EPROTO with a sentence naming the directories and the reason. */
int plugin_load(const char *path, const char *scheme, const struct smp_transport **ret, void **ret_dl,
                char **ret_reason);
/* Adds the plugin names found in path to a sorted, unique list. */
struct name_list {
        char **names;
        size_t n, cap;
};
int name_list_add(struct name_list *l, const char *name, size_t len);
int plugin_list(const char *path, struct name_list *l);

/* ---- smp-conn.c ---- */

/* Parses the part after "<scheme>:" with e's syntax. */
int conn_parse(struct transport_entry *e, const char *address, struct smp_conn **ret, char **ret_reason);
struct transport_entry *conn_get_entry(const struct smp_conn *conn);
/* A syntax a descriptor may carry (names, types, bounds). */
bool conn_syntax_valid(const struct smp_conn_syntax *syntax);

/* asprintf() into *ret_reason when ret_reason is not NULL; returns error. */
int reason_set(char **ret_reason, int error, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
