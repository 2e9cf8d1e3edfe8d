/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A libsmpgw context: where transport plugins are looked for, the
 * transports compiled into the program, the log callback, and the
 * transports loaded so far with their state.  The library keeps no
 * process-wide state; whatever sessions and discoveries need comes from
 * a context.  Give each thread that uses libsmpgw its own context (one
 * per program is the usual case); a context is not locked.
 *
 * Plugins are the files smpgw-transport-<scheme>.so in the directories of
 * the plugin path, searched in order; the first directory that has the
 * file decides (a broken plugin there is an error, not a reason to look
 * further).  The default path is the installed plugin directory
 * (LIBDIR/smpgw/plugins), preceded by the build tree's plugins/ directory
 * when the running program is itself inside the build tree it was built
 * in (compared by /proc/self/exe), so uninstalled programs find their
 * plugins and installed ones never look into a build tree.  libsmpgw
 * reads no environment variables: a program that wants
 * $SMPGW_PLUGIN_DIR honoured passes it to smp_context_set_plugin_path().
 *
 * A loaded plugin is never unmapped while the process lives (its code may
 * be on a call stack of the event loop, and libraries it pulls in keep
 * process state), but its state for the context goes with the context.
 * Sessions, discoveries and parsed connection strings hold a reference on
 * their context, so it lives as long as any of them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <smpgw/smp-conn.h>
#include <smpgw/smp-parse.h>
#include <smpgw/smp-transport.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Transports (built-in and loaded) one context holds at most. */
#define SMP_CONTEXT_TRANSPORTS_MAX 64u

struct smp_context;

/* level is an SMP_LOG_* level; source names who logs ("udp", the
 * transport's name, or "libsmpgw"); message has no trailing newline. */
typedef void (*smp_log_fn)(int level, const char *source, const char *message, void *userdata);

int smp_context_new(struct smp_context **ret);
struct smp_context *smp_context_ref(struct smp_context *ctx);
struct smp_context *smp_context_unref(struct smp_context *ctx);

/* Replaces the plugin path with a ':'-separated list of absolute
 * directories (NULL: back to the default).  -EINVAL: an entry is empty
 * or relative (what it means would depend on the current directory);
 * -ENAMETOOLONG past PATH_MAX.  Transports loaded already stay. */
int smp_context_set_plugin_path(struct smp_context *ctx, const char *path);
/* The path searched, ':'-separated. */
const char *smp_context_get_plugin_path(const struct smp_context *ctx);

/* Messages at max_level (SMP_LOG_*) and more urgent go to fn; without a
 * callback (the default) nothing is logged. */
void smp_context_set_log(struct smp_context *ctx, int max_level, smp_log_fn fn, void *userdata);

/* Adds a transport compiled into the program (tests, a static build);
 * found before plugins on disk.  transport is borrowed and must outlive
 * the context.  -EINVAL: not a valid version 2 descriptor; -EEXIST: the
 * context has a transport of that name already. */
int smp_context_add_transport(struct smp_context *ctx, const struct smp_transport *transport);

/* The transport of a scheme, loaded on first use.  On failure *ret_reason
 * (may be NULL; free() it) is a sentence: which directories were searched
 * for which file, or why the plugin found was refused (dlerror(), its ABI
 * version, a descriptor that is too small or names another scheme).
 * -EINVAL: not a scheme ([a-z0-9]+, at most SMP_CONN_SCHEME_MAX);
 * -ENOENT: no plugin; -EPROTO: a plugin that cannot be used. */
int smp_context_find_transport(struct smp_context *ctx, const char *scheme, const struct smp_transport **ret,
                               char **ret_reason);

/* Lists the transports added to the context and the plugins present in
 * the plugin path (names, sorted, each once; a listed plugin may still
 * fail to load); returns the count or a negative errno.  *ret is a
 * NULL-terminated array to free with smp_strv_free(). */
int smp_context_list_transports(struct smp_context *ctx, char ***ret);

/* Parses and validates a connection string with the grammar of its
 * scheme's transport (loading it).  Errors, with a sentence in
 * *ret_reason (may be NULL; free() it): -EINVAL the string is wrong (the
 * sentence names the part), -ENOENT/-EPROTO as for
 * smp_context_find_transport(). */
int smp_context_parse_conn(struct smp_context *ctx, const char *conn, struct smp_conn **ret, char **ret_reason);

/* Opens a bare transport link to conn, without an SMP session: for
 * programs that speak to the link layer itself (tests, link probes).
 * Send, close and ask it through smp_conn_get_transport(conn).  The
 * link holds no reference: keep the context until it is closed. */
int smp_conn_open_link(const struct smp_conn *conn, sd_event *event, const struct smp_link_callbacks *cb,
                       void *userdata, struct smp_link **ret);

#ifdef __cplusplus
}
#endif
