/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Discovery through a context's transport.  Between the plugin and the
 * caller sits one check: a connection string a plugin reports is parsed
 * like any other and handed on in canonical form, so what discovery finds
 * compares equal to what people type for the same device.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "context-internal.h"
#include "smpgw/smp-discovery.h"
#include "util.h"

struct smp_discovery {
        struct smp_context *ctx;                   /* a reference */
        struct transport_entry *entry;
        struct smp_transport_discovery *running;
        smp_discovered_fn found;
        void *userdata;
};

static void on_found(const struct smp_discovered *found, void *userdata) {
        struct smp_discovery *d = userdata;
        const char *name = d->entry->transport->name;
        size_t n = strlen(name);

        if (!found) {
                d->found(NULL, d->userdata);
                return;
        }

        _cleanup_free_ char *why = NULL;
        struct smp_conn *c = NULL;
        int r = -EINVAL;
        if (found->conn && strncmp(found->conn, name, n) == 0 && found->conn[n] == ':')
                r = conn_parse(d->entry, found->conn + n + 1, &c, &why);
        if (r < 0) {
                context_log(d->ctx, SMP_LOG_WARNING, name, "a discovered device with a bad connection string was "
                            "dropped: %s", why ? why : "not of this transport");
                return;
        }
        struct smp_discovered canonical = *found;
        canonical.conn = smp_conn_get_string(c);
        /* The caller may free d in here: touch nothing of it afterwards. */
        d->found(&canonical, d->userdata);
        smp_conn_unref(c);
}

int smp_discovery_start(struct smp_context *ctx, sd_event *event, const char *scheme, const char *args,
                        smp_discovered_fn found, void *userdata, struct smp_discovery **ret) {
        struct transport_entry *e;
        int r;

        if (!ctx || !event || !scheme || !found || !ret)
                return -EINVAL;
        r = context_find_entry(ctx, scheme, &e, NULL);
        if (r < 0)
                return r;
        if (!e->transport->discover_start)
                return -EOPNOTSUPP;

        struct smp_discovery *d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->ctx = smp_context_ref(ctx);
        d->entry = e;
        d->found = found;
        d->userdata = userdata;
        r = e->transport->discover_start(e->instance, event, args ? args : "", on_found, d, &d->running);
        if (r < 0) {
                smp_context_unref(d->ctx);
                free(d);
                return r;
        }
        *ret = d;
        return 0;
}

struct smp_discovery *smp_discovery_free(struct smp_discovery *d) {
        if (!d)
                return NULL;
        if (d->running)
                d->entry->transport->discover_stop(d->running);
        smp_context_unref(d->ctx);
        free(d);
        return NULL;
}
