/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Finding and loading smpgwd-hawkbit-http.so (hawkbit-http.h says why it
 * is a module): the build's daemon/ first when smpgwd runs from its build
 * tree (as the transport plugins are found), then the installed
 * directory beside the plugins.  A missing or unusable module is an error
 * with a sentence at start, as [hawkbit] cannot work without it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "hawkbit-internal.h"
#include "log.h"
#include "util.h"

struct hawkbit_http {
        void *dl;
        const struct hawkbit_http_module *module;
        struct hawkbit_curl *client;
};

static void module_log(int level, const char *message) {
        log_full(level, "hawkBit: %s", message);
}

static int module_open(const char *file, void **ret_dl, const struct hawkbit_http_module **ret) {
        /* RTLD_NODELETE: libcurl keeps process state (its global init,
         * OpenSSL's) that must not be unmapped under it. */
        void *dl = dlopen(file, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
        if (!dl) {
                const char *why = dlerror();
                log_error("hawkBit: %s cannot be loaded: %s", file, why ? why : "dlopen() failed");
                return -EPROTO;
        }
        const struct hawkbit_http_module *mod = dlsym(dl, HAWKBIT_HTTP_MODULE_SYMBOL);
        if (!mod || mod->struct_size != sizeof(*mod) || !mod->version || !streq(mod->version, PACKAGE_VERSION)) {
                log_error("hawkBit: %s is not the HTTP module of this smpgwd (%s): reinstall smpgwd", file,
                          mod ? "another version" : "no " HAWKBIT_HTTP_MODULE_SYMBOL);
                dlclose(dl);
                return -EPROTO;
        }
        *ret_dl = dl;
        *ret = mod;
        return 0;
}

int hawkbit_http_new(sd_event *event, struct hawkbit_http **ret) {
        const char *dirs[] = { running_from_build_tree(SMPGW_BUILD_ROOT) ? SMPGWD_BUILD_MODULE_DIR : NULL,
                               SMPGWD_MODULE_DIR };
        int r = -ENOENT;

        _cleanup_free_ struct hawkbit_http *h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(dirs) && r == -ENOENT; i++) {
                _cleanup_free_ char *file = NULL;
                if (!dirs[i])
                        continue;
                if (asprintf(&file, "%s/" HAWKBIT_HTTP_MODULE_FILE, dirs[i]) < 0)
                        return -ENOMEM;
                if (access(file, F_OK) < 0)
                        continue;
                r = module_open(file, &h->dl, &h->module);
        }
        if (r == -ENOENT)
                return log_error_errno(r,
                                       "hawkBit: [hawkbit] needs smpgwd's HTTP module " HAWKBIT_HTTP_MODULE_FILE
                                       " (libcurl), which is in none of: %s%s" SMPGWD_MODULE_DIR
                                       ". Install it with smpgwd, or remove [hawkbit].",
                                       dirs[0] ? dirs[0] : "", dirs[0] ? ", " : "");
        if (r < 0)
                return r;
        r = h->module->client_new(event, module_log, &h->client);
        if (r < 0) {
                dlclose(h->dl);
                return log_error_errno(r, "hawkBit: cannot start the HTTP client: %m");
        }
        *ret = TAKE_PTR(h);
        return 0;
}

struct hawkbit_http *hawkbit_http_free(struct hawkbit_http *h) {
        if (!h)
                return NULL;
        /* Requests are owned by their callers, who cancel them first.  The
         * module stays mapped (RTLD_NODELETE); dlclose() drops our
         * reference. */
        h->module->client_free(h->client);
        dlclose(h->dl);
        free(h);
        return NULL;
}

int hawkbit_http_start(struct hawkbit_http *h, const struct hawkbit_http_call *call, hawkbit_http_done_fn done,
                       void *userdata, struct hawkbit_request **ret) {
        return h->module->start(h->client, call, done, userdata, ret);
}

void hawkbit_http_cancel(struct hawkbit_http *h, struct hawkbit_request *req) {
        if (req)
                h->module->cancel(req);
}

unsigned hawkbit_http_in_flight(const struct hawkbit_http *h) {
        return h ? h->module->in_flight(h->client) : 0;
}
