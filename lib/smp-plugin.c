/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Transport plugin loader: connection string schemes to struct
 * smp_transport, from transports registered in-process or from
 * <plugin dir>/smpgw-transport-<scheme>.so.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "smpgw/smp-transport.h"
#include "util.h"

#define PLUGIN_PREFIX "smpgw-transport-"
#define PLUGIN_SUFFIX ".so"
/* A scheme is a short word; anything longer is a typo or an attack. */
#define SCHEME_MAX 32u
/* Distinct transports one process can hold: schemes are validated words
 * and only found plugins are cached, so this is never reached in practice;
 * it keeps a caller probing random schemes from growing us. */
#define REGISTRY_MAX 64u

struct registry_entry {
        char name[SCHEME_MAX];
        const struct smp_transport *transport;
        void *dl;   /* NULL for registered transports */
};

/* The registry is process state on purpose: smp_transport_find() has no
 * context argument (sessions call it from a connection string), and a
 * plugin, once dlopen()ed, must stay loaded for as long as any link it
 * opened may exist, i.e. for the life of the process.  We never dlclose().
 * The mutex costs nothing on the event-loop thread and keeps the library
 * safe for a program that opens sessions from several threads. */
static struct {
        pthread_mutex_t lock;
        struct registry_entry entries[REGISTRY_MAX];
        size_t n;
} registry = { .lock = PTHREAD_MUTEX_INITIALIZER };

static bool scheme_valid(const char *s, size_t len) {
        if (len == 0 || len >= SCHEME_MAX)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

int smp_conn_split(const char *conn, char *scheme, size_t scheme_size, const char **ret_address) {
        if (!conn || !scheme || !ret_address)
                return -EINVAL;
        if (strnlen(conn, SMP_CONN_MAX + 1) > SMP_CONN_MAX)
                return -ENAMETOOLONG;

        const char *colon = strchr(conn, ':');
        if (!colon)
                return -EINVAL;
        size_t len = (size_t) (colon - conn);
        if (!scheme_valid(conn, len))
                return -EINVAL;
        if (len >= scheme_size)
                return -ENAMETOOLONG;
        memcpy(scheme, conn, len);
        scheme[len] = 0;
        *ret_address = colon + 1;
        return 0;
}

static bool transport_valid(const struct smp_transport *t) {
        return t->abi_version == SMP_TRANSPORT_ABI_VERSION && t->name &&
               scheme_valid(t->name, strlen(t->name)) && t->open && t->close && t->send &&
               t->get_info && t->get_stats && (!t->discover_start == !t->discover_stop);
}

/* Called with the lock held. */
static const struct registry_entry *registry_lookup(const char *name) {
        for (size_t i = 0; i < registry.n; i++)
                if (streq(registry.entries[i].name, name))
                        return &registry.entries[i];
        return NULL;
}

/* Called with the lock held. */
static int registry_add(const struct smp_transport *t, void *dl) {
        if (registry_lookup(t->name))
                return -EEXIST;
        if (registry.n >= REGISTRY_MAX)
                return -ENOSPC;
        struct registry_entry *e = &registry.entries[registry.n++];
        snprintf(e->name, sizeof(e->name), "%s", t->name);
        e->transport = t;
        e->dl = dl;
        return 0;
}

int smp_transport_register(const struct smp_transport *transport) {
        if (!transport || !transport_valid(transport))
                return -EINVAL;
        pthread_mutex_lock(&registry.lock);
        int r = registry_add(transport, NULL);
        pthread_mutex_unlock(&registry.lock);
        return r;
}

/* The plugin path: $SMPGW_PLUGIN_DIR (a ':'-separated list) or the one
 * compiled in.  secure_getenv(): a setuid or otherwise elevated program
 * must never load code from a directory its caller chose. */
static const char *plugin_path(void) {
        const char *e = secure_getenv("SMPGW_PLUGIN_DIR");
        return e && *e ? e : SMPGW_PLUGIN_DIR;
}

/* Calls fn for each directory in the path; stops at the first result that
 * is not -ENOENT.  Relative entries are skipped: what they mean would
 * depend on the current directory, not on the configuration. */
static int plugin_path_foreach(int (*fn)(const char *dir, void *userdata), void *userdata) {
        _cleanup_free_ char *path = strdup(plugin_path());
        if (!path)
                return -ENOMEM;
        char *save = NULL;
        for (char *dir = strtok_r(path, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
                if (dir[0] != '/')
                        continue;
                int r = fn(dir, userdata);
                if (r != -ENOENT)
                        return r;
        }
        return -ENOENT;
}

struct load_ctx {
        const char *scheme;
        const struct smp_transport *found;
        void *dl;
};

static int plugin_try_load(const char *dir, void *userdata) {
        struct load_ctx *c = userdata;
        _cleanup_free_ char *file = NULL;

        if (asprintf(&file, "%s/" PLUGIN_PREFIX "%s" PLUGIN_SUFFIX, dir, c->scheme) < 0)
                return -ENOMEM;
        if (access(file, F_OK) < 0)
                return errno == ENOENT || errno == ENOTDIR ? -ENOENT : -errno;

        /* RTLD_LOCAL: plugins must not see each other's symbols, nor lend
         * theirs to the next plugin loaded. */
        void *dl = dlopen(file, RTLD_NOW | RTLD_LOCAL);
        if (!dl)
                /* Present but not loadable: a missing library dependency,
                 * a wrong architecture.  Not ours to use. */
                return -EPROTO;
        const struct smp_transport *t = dlsym(dl, SMP_TRANSPORT_SYMBOL);
        if (!t || !transport_valid(t) || !streq(t->name, c->scheme)) {
                dlclose(dl);
                return -EPROTO;
        }
        c->found = t;
        c->dl = dl;
        return 0;
}

int smp_transport_find(const char *scheme, const struct smp_transport **ret) {
        int r;

        if (!scheme || !ret)
                return -EINVAL;
        /* The scheme becomes part of a file name: only a plain word may. */
        if (!scheme_valid(scheme, strlen(scheme)))
                return -EINVAL;

        pthread_mutex_lock(&registry.lock);
        const struct registry_entry *e = registry_lookup(scheme);
        if (e) {
                *ret = e->transport;
                pthread_mutex_unlock(&registry.lock);
                return 0;
        }

        struct load_ctx c = { .scheme = scheme };
        r = plugin_path_foreach(plugin_try_load, &c);
        if (r >= 0) {
                r = registry_add(c.found, c.dl);
                if (r < 0)
                        dlclose(c.dl);
                else
                        *ret = c.found;
        }
        pthread_mutex_unlock(&registry.lock);
        return r;
}

/* ---- listing ---- */

struct name_list {
        char **names;
        size_t n, cap;
};

static int name_list_add(struct name_list *l, const char *name, size_t len) {
        for (size_t i = 0; i < l->n; i++)
                if (strlen(l->names[i]) == len && memcmp(l->names[i], name, len) == 0)
                        return 0;
        if (l->n + 2 > l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 8;
                char **names = realloc(l->names, cap * sizeof(char *));
                if (!names)
                        return -ENOMEM;
                l->names = names;
                l->cap = cap;
        }
        char *copy = strndup(name, len);
        if (!copy)
                return -ENOMEM;
        l->names[l->n++] = copy;
        l->names[l->n] = NULL;
        return 0;
}

static int plugin_list_dir(const char *dir, void *userdata) {
        struct name_list *l = userdata;
        DIR *d = opendir(dir);
        if (!d)
                return -ENOENT; /* a missing directory is an empty one */

        const size_t pre = strlen(PLUGIN_PREFIX), suf = strlen(PLUGIN_SUFFIX);
        int r = -ENOENT;
        for (struct dirent *de; (de = readdir(d));) {
                size_t len = strlen(de->d_name);
                if (len <= pre + suf || strncmp(de->d_name, PLUGIN_PREFIX, pre) != 0 ||
                    strcmp(de->d_name + len - suf, PLUGIN_SUFFIX) != 0)
                        continue;
                const char *name = de->d_name + pre;
                size_t n = len - pre - suf;
                if (!scheme_valid(name, n))
                        continue;
                if (name_list_add(l, name, n) < 0) {
                        r = -ENOMEM;
                        break;
                }
        }
        closedir(d);
        /* -ENOENT: go on with the next directory of the path. */
        return r;
}

static int strcmp_ptr(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int smp_transport_list(char ***ret) {
        struct name_list l = {};
        int r = 0;

        if (!ret)
                return -EINVAL;

        pthread_mutex_lock(&registry.lock);
        for (size_t i = 0; i < registry.n && r >= 0; i++)
                if (!registry.entries[i].dl)
                        r = name_list_add(&l, registry.entries[i].name,
                                          strlen(registry.entries[i].name));
        pthread_mutex_unlock(&registry.lock);

        if (r >= 0) {
                r = plugin_path_foreach(plugin_list_dir, &l);
                if (r == -ENOENT)
                        r = 0;
        }
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

void smp_strv_free(char **strv) {
        if (!strv)
                return;
        for (char **s = strv; *s; s++)
                free(*s);
        free(strv);
}
