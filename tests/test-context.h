/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Contexts and bare links for the transport tests: the plugin path from
 * $SMPGW_PLUGIN_DIR when meson sets it (the loader tests add a directory
 * of broken plugins), else the default, which for a test of this build
 * tree is the build's plugins/ directory.
 */
#pragma once

#include <stdlib.h>

#include "smpgw/smp-context.h"
#include "test-util.h"

static inline struct smp_context *test_context_new(void) {
        struct smp_context *ctx;
        const char *path = getenv("SMPGW_PLUGIN_DIR");

        ASSERT_OK(smp_context_new(&ctx));
        if (path && *path)
                ASSERT_OK(smp_context_set_plugin_path(ctx, path));
        return ctx;
}

/* Parses conn in ctx and opens a bare link to it: the link's result, or
 * the parser's (-EINVAL for a string the transport's grammar refuses). */
static inline int test_link_open(struct smp_context *ctx, sd_event *e, const char *conn,
                                 const struct smp_link_callbacks *cb, void *userdata,
                                 const struct smp_transport **ret_transport, struct smp_link **ret) {
        struct smp_conn *c;
        int r = smp_context_parse_conn(ctx, conn, &c, NULL);
        if (r < 0)
                return r;
        if (ret_transport)
                *ret_transport = smp_conn_get_transport(c);
        r = smp_conn_open_link(c, e, cb, userdata, ret);
        smp_conn_unref(c);
        return r;
}
