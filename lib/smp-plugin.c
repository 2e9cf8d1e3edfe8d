/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The transport plugin loader: the default search path, finding
 * <dir>/smpgw-transport-<scheme>.so along a path, dlopen(), and the checks
 * a version 2 descriptor must pass.  Every refusal comes with a sentence:
 * which directories were searched, what dlerror() said, which ABI version
 * the plugin was built for.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "context-internal.h"
#include "util.h"

#define PLUGIN_PREFIX "smpgw-transport-"
#define PLUGIN_SUFFIX ".so"

/* ---- the default path ---- */

int plugin_default_path(char **ret) {
        char *path;
        if (running_from_build_tree(SMPGW_BUILD_ROOT))
                path = strdup(SMPGW_BUILD_PLUGIN_DIR ":" SMPGW_PLUGIN_DIR);
        else
                path = strdup(SMPGW_PLUGIN_DIR);
        if (!path)
                return -ENOMEM;
        *ret = path;
        return 0;
}

/* ---- descriptors ---- */

int plugin_check_descriptor(const struct smp_transport *t, char **ret_reason) {
        if (t->abi_version != SMP_TRANSPORT_ABI_VERSION)
                return reason_set(ret_reason, -EPROTO, "it was built for plugin ABI version %u, this libsmpgw speaks %u",
                                  t->abi_version, SMP_TRANSPORT_ABI_VERSION);
        if (t->struct_size < SMP_TRANSPORT_SIZE_V2)
                return reason_set(ret_reason, -EPROTO,
                                  "its descriptor is %u bytes, ABI version %u needs at least %zu", t->struct_size,
                                  SMP_TRANSPORT_ABI_VERSION, (size_t) SMP_TRANSPORT_SIZE_V2);
        if (!t->name || !scheme_valid(t->name, strlen(t->name)))
                return reason_set(ret_reason, -EPROTO, "its descriptor has no valid name");
        if (!t->instance_new || !t->instance_free || !t->open || !t->close || !t->send || !t->get_info ||
            !t->get_stats || !t->discover_start != !t->discover_stop)
                return reason_set(ret_reason, -EPROTO, "its descriptor lacks required functions");
        if (!conn_syntax_valid(t->conn_syntax))
                return reason_set(ret_reason, -EPROTO, "its connection string syntax is not valid");
        return 0;
}

/* ---- loading ---- */

int plugin_load(const char *path, const char *scheme, const struct smp_transport **ret, void **ret_dl,
                char **ret_reason) {
        _cleanup_free_ char *copy = strdup(path), *searched = NULL;
        size_t searched_len = 0;
        char *save = NULL;

        if (!copy)
                return -ENOMEM;
        for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
                _cleanup_free_ char *file = NULL;
                if (asprintf(&file, "%s/" PLUGIN_PREFIX "%s" PLUGIN_SUFFIX, dir, scheme) < 0)
                        return -ENOMEM;
                if (access(file, F_OK) < 0) {
                        if (errno != ENOENT && errno != ENOTDIR)
                                return reason_set(ret_reason, -EPROTO, "cannot read %s: %s", file, strerror(errno));
                        /* Remember it for the sentence. */
                        size_t n = strlen(dir);
                        char *s = realloc(searched, searched_len + n + 3);
                        if (!s)
                                return -ENOMEM;
                        searched = s;
                        searched_len += (size_t) sprintf(searched + searched_len, "%s%s", searched_len ? ", " : "", dir);
                        continue;
                }

                /* RTLD_LOCAL: plugins must not see each other's symbols,
                 * nor lend theirs to the next plugin loaded.  RTLD_NODELETE:
                 * code stays mapped once loaded (see smp-context.h). */
                void *dl = dlopen(file, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
                if (!dl) {
                        const char *why = dlerror();
                        return reason_set(ret_reason, -EPROTO, "%s cannot be loaded: %s", file,
                                          why ? why : "dlopen() failed");
                }
                const struct smp_transport *t = dlsym(dl, SMP_TRANSPORT_SYMBOL);
                if (!t) {
                        dlclose(dl);
                        return reason_set(ret_reason, -EPROTO, "%s is not a transport plugin: it has no %s symbol",
                                          file, SMP_TRANSPORT_SYMBOL);
                }
                _cleanup_free_ char *why = NULL;
                int r = plugin_check_descriptor(t, &why);
                if (r < 0) {
                        dlclose(dl);
                        return reason_set(ret_reason, r, "%s cannot be used: %s", file, why ? why : "bad descriptor");
                }
                if (!streq(t->name, scheme)) {
                        dlclose(dl);
                        return reason_set(ret_reason, -EPROTO, "%s is the '%s' transport, not '%s'", file, t->name,
                                          scheme);
                }
                *ret = t;
                *ret_dl = dl;
                return 0;
        }
        return reason_set(ret_reason, -ENOENT,
                          "no transport plugin for '%s:' (" PLUGIN_PREFIX "%s" PLUGIN_SUFFIX " is in none of: %s)",
                          scheme, scheme, searched ? searched : "(an empty plugin path)");
}

/* ---- listing ---- */

int name_list_add(struct name_list *l, const char *name, size_t len) {
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

static int plugin_list_dir(const char *dir, struct name_list *l) {
        DIR *d = opendir(dir);
        if (!d)
                return 0; /* a missing directory is an empty one */

        const size_t pre = strlen(PLUGIN_PREFIX), suf = strlen(PLUGIN_SUFFIX);
        int r = 0;
        for (struct dirent *de; (de = readdir(d));) {
                size_t len = strlen(de->d_name);
                if (len <= pre + suf || strncmp(de->d_name, PLUGIN_PREFIX, pre) != 0 ||
                    strcmp(de->d_name + len - suf, PLUGIN_SUFFIX) != 0)
                        continue;
                const char *name = de->d_name + pre;
                size_t n = len - pre - suf;
                if (!scheme_valid(name, n))
                        continue;
                r = name_list_add(l, name, n);
                if (r < 0)
                        break;
        }
        closedir(d);
        return r;
}

int plugin_list(const char *path, struct name_list *l) {
        _cleanup_free_ char *copy = strdup(path);
        char *save = NULL;
        if (!copy)
                return -ENOMEM;
        for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
                int r = plugin_list_dir(dir, l);
                if (r < 0)
                        return r;
        }
        return 0;
}
