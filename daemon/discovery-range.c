/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The discovery range grammar (discovery-range.h), parsed without sscanf
 * or any arithmetic that can wrap: a range is counted in 64 bits before
 * anything is allocated for it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "discovery-range.h"
#include "smpgw/smp-transport.h"   /* SMP_CONN_MAX */
#include "util.h"

/* 1..65535, decimal digits only: no sign, no space, no leading "0x". */
static int parse_port(const char *s, size_t len, uint16_t *ret) {
        unsigned v = 0;

        if (len == 0 || len > 5)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                v = v * 10 + (unsigned) (s[i] - '0');
        }
        if (v == 0 || v > 65535)
                return -EINVAL;
        *ret = (uint16_t) v;
        return 0;
}

/* A numeric IPv4 address or "localhost", in host byte order. */
static int parse_ipv4(const char *s, size_t len, uint32_t *ret) {
        char buf[INET_ADDRSTRLEN];
        struct in_addr a;

        if (len == 0 || len >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s, len);
        buf[len] = 0;
        if (streq(buf, "localhost"))
                snprintf(buf, sizeof(buf), "127.0.0.1");
        if (inet_pton(AF_INET, buf, &a) != 1)
                return -EINVAL;
        *ret = ntohl(a.s_addr);
        return 0;
}

/* The inside of "[...]": an IPv6 address, optionally "%scope" with an
 * interface name. */
static int check_ipv6(const char *s, size_t len) {
        char buf[INET6_ADDRSTRLEN];
        struct in6_addr a;
        const char *pct = memchr(s, '%', len);
        size_t addr_len = pct ? (size_t) (pct - s) : len;

        if (addr_len == 0 || addr_len >= sizeof(buf))
                return -EINVAL;
        if (pct) {
                size_t scope_len = len - addr_len - 1;
                if (scope_len == 0 || scope_len >= IF_NAMESIZE)
                        return -EINVAL;
                for (size_t i = 0; i < scope_len; i++) {
                        char c = pct[1 + i];
                        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                              c == '_' || c == '.' || c == '-'))
                                return -EINVAL;
                }
        }
        memcpy(buf, s, addr_len);
        buf[addr_len] = 0;
        return inet_pton(AF_INET6, buf, &a) == 1 ? 0 : -EINVAL;
}

int discovery_range_parse(const char *text, struct discovery_range *ret) {
        struct discovery_range range = {};
        size_t len, host_len;
        int r;

        if (!text || !ret)
                return -EINVAL;
        len = strnlen(text, SMP_CONN_MAX + 1);
        if (len > SMP_CONN_MAX)
                return -ENAMETOOLONG;

        /* HOST ends at the one ':' after it (after the ']' for IPv6). */
        if (text[0] == '[') {
                const char *close = memchr(text, ']', len);
                if (!close || (size_t) (close - text) + 1 >= len || close[1] != ':')
                        return -EINVAL;
                r = check_ipv6(text + 1, (size_t) (close - text) - 1);
                if (r < 0)
                        return r;
                host_len = (size_t) (close - text) + 1;
        } else {
                const char *colon = memchr(text, ':', len);
                if (!colon || memchr(colon + 1, ':', len - (size_t) (colon + 1 - text)))
                        return -EINVAL;
                host_len = (size_t) (colon - text);
        }

        /* PORT[-PORT] */
        const char *p = text + host_len + 1;
        size_t p_len = len - host_len - 1;
        const char *dash = memchr(p, '-', p_len);
        if (dash) {
                r = parse_port(p, (size_t) (dash - p), &range.port_first);
                if (r >= 0)
                        r = parse_port(dash + 1, p_len - (size_t) (dash - p) - 1, &range.port_last);
        } else {
                r = parse_port(p, p_len, &range.port_first);
                range.port_last = range.port_first;
        }
        if (r < 0)
                return r;
        if (range.port_last < range.port_first)
                return -EINVAL;
        range.n_ports = (uint32_t) range.port_last - range.port_first + 1;

        /* A dash range only for IPv4 (no brackets). */
        dash = text[0] != '[' ? memchr(text, '-', host_len) : NULL;
        if (dash) {
                r = parse_ipv4(text, (size_t) (dash - text), &range.addr_first);
                if (r >= 0)
                        r = parse_ipv4(dash + 1, host_len - (size_t) (dash - text) - 1, &range.addr_last);
                if (r < 0)
                        return r;
                if (range.addr_last < range.addr_first)
                        return -EINVAL;
                /* 0.0.0.0-255.255.255.255 is 2^32 addresses: one more
                 * than a uint32_t holds. */
                uint64_t n_addrs = (uint64_t) range.addr_last - range.addr_first + 1;
                if (n_addrs > DISCOVERY_RANGE_TARGETS_MAX)
                        return -E2BIG;
                range.n_addrs = (uint32_t) n_addrs;
        } else {
                if (text[0] != '[') {
                        r = parse_ipv4(text, host_len, &range.addr_first);
                        if (r < 0)
                                return r;
                        range.addr_last = range.addr_first;
                }
                if (host_len >= sizeof(range.host))
                        return -EINVAL;
                memcpy(range.host, text, host_len);
                range.host[host_len] = 0;
                range.n_addrs = 1;
        }

        uint64_t n = (uint64_t) range.n_addrs * range.n_ports;
        if (n > DISCOVERY_RANGE_TARGETS_MAX)
                return -E2BIG;
        range.n_targets = (uint32_t) n;
        *ret = range;
        return 0;
}

int discovery_range_target(const struct discovery_range *range, const char *scheme, uint32_t i, char *buf,
                           size_t size) {
        char addr[INET_ADDRSTRLEN];
        const char *host;
        int n;

        if (!range || !scheme || !buf || i >= range->n_targets || range->n_ports == 0)
                return -EINVAL;
        host = range->host;
        if (!host[0]) {
                struct in_addr ia = { .s_addr = htonl(range->addr_first + i / range->n_ports) };
                if (!inet_ntop(AF_INET, &ia, addr, sizeof(addr)))
                        return -errno;
                host = addr;
        }
        n = snprintf(buf, size, "%s:%s:%u", scheme, host, (unsigned) range->port_first + i % range->n_ports);
        if (n < 0 || (size_t) n >= size)
                return -ENOBUFS;
        return 0;
}
