/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Connection strings of Bluetooth Mesh targets: "mesh:<distributor
 * id>/<unicast address>".
 *
 * Why the daemon reads these itself and libsmpgw does not: a connection
 * string in libsmpgw names an SMP endpoint, and smp_context_parse_conn()
 * hands the string to the transport plugin of its scheme, which must
 * then be able to open a link to it.  A mesh target is no SMP endpoint:
 * nothing can open a link to it, the gateway reaches it only through the
 * Distributor's shell, and its address is meaningful only together with
 * a device of smpgwd's inventory (the Distributor's id).  A "mesh" plugin
 * would have to accept strings and refuse every open, and would let
 * smp_session_open() on a target fail late instead of never being tried.
 * So the inventory takes this one scheme without a plugin, with the
 * grammar below, and nothing opens a session to such a device (no
 * probe, no push: distributions only).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "smpgw/mesh-dfu.h"
#include "smpgw/smp-parse.h"
#include "util.h"

bool mesh_conn_is_mesh(const char *conn) {
        return conn && strncmp(conn, MESH_CONN_PREFIX, strlen(MESH_CONN_PREFIX)) == 0;
}

/* Decimal, or hex after 0x (as Zephyr prints addresses, by release). */
static int parse_addr(const char *s, uint64_t *ret) {
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
                uint64_t v = 0;
                size_t n = 0;
                for (s += 2; *s; s++, n++) {
                        int c = *s, k;
                        if (c >= '0' && c <= '9')
                                k = c - '0';
                        else if (c >= 'a' && c <= 'f')
                                k = c - 'a' + 10;
                        else if (c >= 'A' && c <= 'F')
                                k = c - 'A' + 10;
                        else
                                return -EINVAL;
                        if (n >= 4)
                                return -ERANGE;
                        v = v * 16 + (uint64_t) k;
                }
                if (n == 0)
                        return -EINVAL;
                *ret = v;
                return 0;
        }
        return smp_parse_uint(s, 0, UINT16_MAX, ret);
}

_printf_(2, 3) static int refuse(char **ret_reason, const char *fmt, ...) {
        va_list ap;
        if (ret_reason) {
                va_start(ap, fmt);
                if (vasprintf(ret_reason, fmt, ap) < 0)
                        *ret_reason = NULL;
                va_end(ap);
        }
        return -EINVAL;
}

int mesh_conn_parse(const char *conn, uint64_t *ret_distributor, uint16_t *ret_addr, char **ret_reason) {
        char id[24], addr[16];
        uint64_t dist, a;

        if (!mesh_conn_is_mesh(conn))
                return refuse(ret_reason, "a mesh target is written mesh:<distributor id>/<unicast address>");
        const char *p = conn + strlen(MESH_CONN_PREFIX);
        const char *slash = strchr(p, '/');
        if (!slash || (size_t) (slash - p) >= sizeof(id) || strlen(slash + 1) >= sizeof(addr))
                return refuse(ret_reason, "a mesh target is written mesh:<distributor id>/<unicast address>");
        memcpy(id, p, (size_t) (slash - p));
        id[slash - p] = 0;
        strcpy(addr, slash + 1);
        if (smp_parse_uint(id, 1, INT64_MAX, &dist) < 0)
                return refuse(ret_reason, "'%s' is no device id (the Distributor's)", id);
        if (parse_addr(addr, &a) < 0 || !smp_mesh_addr_is_unicast((uint32_t) a))
                return refuse(ret_reason, "'%s' is no unicast address (0x0001..0x7fff)", addr);
        *ret_distributor = dist;
        *ret_addr = (uint16_t) a;
        return 0;
}

int mesh_conn_format(uint64_t distributor_id, uint16_t addr, char *buf, size_t size) {
        int k = snprintf(buf, size, MESH_CONN_PREFIX "%" PRIu64 "/0x%04x", distributor_id, addr);
        return k < 0 || (size_t) k >= size ? -ENOBUFS : k;
}
