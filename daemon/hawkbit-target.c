/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Which devices the hawkBit server sees, and by which controllerId
 * ([hawkbit] expose, controller_id, controller_id_prefix), and the
 * gateway token.
 */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "hawkbit-internal.h"
#include "log.h"
#include "manager.h"
#include "util.h"

/* The rest of s after prefix, NULL when s does not start with it. */
static const char *after_prefix(const char *s, const char *prefix) {
        size_t n = strlen(prefix);
        return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

bool hawkbit_device_exposed(const struct manager *m, const struct device *d) {
        const struct config *c = m->config;
        const char *v;

        if (c->n_hawkbit_expose == 0)
                return true; /* the default: all */
        for (size_t i = 0; i < c->n_hawkbit_expose; i++) {
                const char *e = c->hawkbit_expose[i];
                if (streq(e, "all"))
                        return true;
                /* fnmatch(), not strcmp(): a glob (transport:co*) costs nothing, and
                 * gcc -fsanitize misreads the bounds of a strcmp() here. */
                if ((v = after_prefix(e, "transport:")) && fnmatch(v, d->transport, 0) == 0)
                        return true;
                if ((v = after_prefix(e, "name:")) && d->name && fnmatch(v, d->name, 0) == 0)
                        return true;
                if ((v = after_prefix(e, "id:"))) {
                        char buf[24];
                        snprintf(buf, sizeof(buf), "%" PRIu64, d->id);
                        if (streq(v, buf))
                                return true;
                }
        }
        return false;
}

int hawkbit_controller_id(const struct manager *m, const struct device *d, char **ret) {
        const struct config *c = m->config;
        char idbuf[24];
        const char *tail;

        if (streq(c->hawkbit_id_scheme, "address") && d->address && *d->address)
                tail = d->address;
        else {
                /* A device without an address (none known yet) keeps its id. */
                snprintf(idbuf, sizeof(idbuf), "%" PRIu64, d->id);
                tail = idbuf;
        }
        char *s;
        if (asprintf(&s, "%s%s", c->hawkbit_id_prefix ?: "", tail) < 0)
                return -ENOMEM;
        /* BLE addresses (AA:BB:..), udp host:port: ':' and the like would
         * need escaping in the URL path, and hawkBit's ids are plain. */
        for (char *p = s; *p; p++)
                if (!isalnum((unsigned char) *p) && !strchr("-_.~", *p))
                        *p = '-';
        *ret = s;
        return 0;
}

int hawkbit_read_token(const char *path, char **ret_header) {
        _cleanup_free_ char *text = NULL;
        size_t size = 0, len;
        char *s;
        int r;

        r = config_read_file(path, CONFIG_GATEWAY_TOKEN_FILE_MAX, &text, &size);
        if (r < 0)
                return log_error_errno(r, "Cannot use [hawkbit] gateway_token_file '%s': %s", path,
                                       config_read_error(r));
        s = text;
        while (*s && isspace((unsigned char) *s))
                s++;
        len = strcspn(s, "\r\n");
        while (len > 0 && isspace((unsigned char) s[len - 1]))
                len--;
        r = 0;
        if (len == 0 || len > HAWKBIT_TOKEN_MAX)
                r = log_error_errno(-EINVAL, "[hawkbit] gateway_token_file '%s': no token, or longer than %u bytes",
                                    path, HAWKBIT_TOKEN_MAX);
        for (size_t i = 0; r == 0 && i < len; i++)
                if ((unsigned char) s[i] <= ' ' || s[i] == 0x7f)
                        r = log_error_errno(-EINVAL,
                                            "[hawkbit] gateway_token_file '%s': the token holds a space or a "
                                            "control character",
                                            path);
        if (r == 0 && asprintf(ret_header, "Authorization: GatewayToken %.*s", (int) len, s) < 0)
                r = -ENOMEM;
        /* A secret: no copy outlives this call but the header. */
        explicit_bzero(text, size);
        return r;
}
