/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Connection strings: parsing against a transport's declared syntax,
 * the canonical form, and the accessors plugins read them with.  The
 * grammar is in smp-conn.h and doc/connection-strings.md.
 *
 * Every sentence quotes only parts of the string, and only after the
 * context checked that the whole string is printable ASCII.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context-internal.h"
#include "smpgw/smp-conn.h"
#include "util.h"

/* Characters of a device path component besides letters and digits:
 * what udev's names use (by-id, by-path: "pci-0000:00:14.0-usb-0:1:1.0"). */
#define PATH_PUNCT "._+:@-"
#define INDEXED_PREFIX_MAX 8u
#define OPTION_TEXT_MAX (INDEXED_PREFIX_MAX + 21u)

struct option_value {
        bool set;
        uint64_t number;              /* UINT/INDEXED: the value, WORD: the index */
        char text[OPTION_TEXT_MAX];   /* canonical text */
};

struct smp_conn {
        unsigned n_ref;
        struct smp_context *ctx;      /* a reference */
        struct transport_entry *entry;
        char *string;                 /* canonical */
        char *address;                /* canonical address part */
        enum smp_conn_address kind;

        /* INET */
        int family;
        union {
                struct in_addr v4;
                struct in6_addr v6;
        };
        uint16_t port;
        char host[INET6_ADDRSTRLEN];
        char scope[IF_NAMESIZE];

        /* BDADDR */
        char bdaddr[18];

        struct option_value options[SMP_CONN_OPTIONS_MAX];
};

int reason_set(char **ret_reason, int error, const char *fmt, ...) {
        if (ret_reason) {
                va_list ap;
                va_start(ap, fmt);
                if (vasprintf(ret_reason, fmt, ap) < 0)
                        *ret_reason = NULL;
                va_end(ap);
        }
        return error;
}

/* "udp:HOST:PORT", for sentences. */
static void usage_hint(const struct transport_entry *e, char *buf, size_t size) {
        const struct smp_conn_syntax *syn = e->transport->conn_syntax;
        const char *name = e->transport->name;

        switch (syn->address) {
        case SMP_CONN_ADDRESS_INET:
                snprintf(buf, size, "%s:HOST%s", name, syn->default_port ? "[:PORT]" : ":PORT");
                break;
        case SMP_CONN_ADDRESS_DEV_PATH:
                snprintf(buf, size, "%s:/dev/PATH", name);
                break;
        case SMP_CONN_ADDRESS_BDADDR:
                snprintf(buf, size, "%s:AA:BB:CC:DD:EE:FF", name);
                break;
        }
}

/* ---- INET ---- */

static bool ifname_valid(const char *s) {
        size_t n = strlen(s);
        if (n == 0 || n >= IF_NAMESIZE)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", s[i]))
                        return false;
        return true;
}

static bool looks_like_ipv6(const char *s) {
        /* Two colons or more, and nothing but hex digits, colons and dots. */
        const char *c = strchr(s, ':');
        return c && strchr(c + 1, ':') && strspn(s, "0123456789abcdefABCDEF:.") == strlen(s);
}

static int parse_port(const struct transport_entry *e, const char *p, const char *host, struct smp_conn *c,
                      char **ret_reason) {
        size_t digits = strspn(p, "0123456789");
        uint64_t port;
        char hint[64];

        usage_hint(e, hint, sizeof(hint));
        if (!*p)
                return reason_set(ret_reason, -EINVAL, "no port after '%s:' (%s)", host, hint);
        if (digits == 0)
                return reason_set(ret_reason, -EINVAL, "port '%s' is not a number (%s)", p, hint);
        if (p[digits])
                return reason_set(ret_reason, -EINVAL, "unexpected '%s' after the port %.*s%s", p + digits,
                                  (int) digits, p,
                                  p[digits] == ':' ? " (IPv6 addresses go in brackets: [2001:db8::1]:1337)" : "");
        if (smp_parse_uint_n(p, digits, 1, 65535, &port) < 0)
                return reason_set(ret_reason, -EINVAL, "port '%s' is out of range (1 to 65535)", p);
        c->port = (uint16_t) port;
        return 0;
}

static int parse_inet(const struct transport_entry *e, char *a, struct smp_conn *c, char **ret_reason) {
        const struct smp_conn_syntax *syn = e->transport->conn_syntax;
        const char *rest;
        char hint[64];
        int r;

        usage_hint(e, hint, sizeof(hint));
        if (!*a)
                return reason_set(ret_reason, -EINVAL, "no address after '%s:' (%s)", e->transport->name, hint);

        if (a[0] == '[') {
                char *close = strchr(a, ']');
                if (!close)
                        return reason_set(ret_reason, -EINVAL, "'%s' lacks the ']' that closes an IPv6 address",
                                          a);
                *close = 0;
                rest = close + 1;
                char *inner = a + 1, *pct = strchr(inner, '%');
                if (pct) {
                        *pct = 0;
                        if (!ifname_valid(pct + 1))
                                return reason_set(ret_reason, -EINVAL,
                                                  "'%s' after '%%' in '[%s%%%s]' is not an interface name",
                                                  pct + 1, inner, pct + 1);
                        snprintf(c->scope, sizeof(c->scope), "%s", pct + 1);
                }
                if (inet_pton(AF_INET6, inner, &c->v6) != 1)
                        return reason_set(ret_reason, -EINVAL, "'%s' in brackets is not an IPv6 address", inner);
                if (IN6_IS_ADDR_V4MAPPED(&c->v6)) {
                        /* The same device as the plain IPv4 address. */
                        if (c->scope[0])
                                return reason_set(ret_reason, -EINVAL,
                                                  "an interface ('%%%s') goes only with a link-local address",
                                                  c->scope);
                        memcpy(&c->v4, &c->v6.s6_addr[12], 4);
                        c->family = AF_INET;
                } else {
                        c->family = AF_INET6;
                        bool link_local = IN6_IS_ADDR_LINKLOCAL(&c->v6);
                        if (c->scope[0] && !link_local)
                                return reason_set(ret_reason, -EINVAL,
                                                  "an interface ('%%%s') goes only with a link-local (fe80::/10) "
                                                  "address, not with '%s'",
                                                  c->scope, inner);
                        if (!c->scope[0] && link_local)
                                return reason_set(ret_reason, -EINVAL,
                                                  "link-local address '%s' needs its interface: [%s%%eth0]", inner,
                                                  inner);
                }
        } else {
                char *colon = strchr(a, ':');
                bool ipv6 = looks_like_ipv6(a);
                char whole[SMP_CONN_MAX + 1];
                snprintf(whole, sizeof(whole), "%s", a);
                if (colon)
                        *colon = 0;
                rest = colon ? colon + 1 : NULL;
                if (streq(a, "localhost"))
                        c->v4.s_addr = htonl(INADDR_LOOPBACK);
                else if (inet_pton(AF_INET, a, &c->v4) == 1)
                        ;
                else if (ipv6)
                        return reason_set(ret_reason, -EINVAL,
                                          "'%s' looks like an IPv6 address: IPv6 addresses go in brackets "
                                          "([2001:db8::1]:1337)",
                                          whole);
                else if (!*a)
                        return reason_set(ret_reason, -EINVAL, "no host before ':' (%s)", hint);
                else
                        return reason_set(ret_reason, -EINVAL,
                                          "host '%s' is not an IPv4 address, an IPv6 address in brackets or "
                                          "localhost (host names are not resolved)",
                                          a);
                c->family = AF_INET;
        }

        if (c->family == AF_INET)
                inet_ntop(AF_INET, &c->v4, c->host, sizeof(c->host));
        else
                inet_ntop(AF_INET6, &c->v6, c->host, sizeof(c->host));
        /* The host for sentences, as written. */
        char shown[SMP_CONN_MAX + IF_NAMESIZE + 4];
        if (a[0] != '[')
                snprintf(shown, sizeof(shown), "%s", a);
        else
                snprintf(shown, sizeof(shown), "[%s%s%s]", a + 1, c->scope[0] ? "%" : "", c->scope);

        if (rest && a[0] == '[' && *rest == 0)
                rest = NULL;
        if (!rest) {
                if (!syn->default_port)
                        return reason_set(ret_reason, -EINVAL, "no port after '%s' (%s)", shown, hint);
                c->port = syn->default_port;
        } else {
                if (a[0] == '[') {
                        if (rest[0] != ':')
                                return reason_set(ret_reason, -EINVAL, "unexpected '%s' after '%s' (%s)", rest,
                                                  shown, hint);
                        rest++;
                }
                r = parse_port(e, rest, shown, c, ret_reason);
                if (r < 0)
                        return r;
        }

        if (c->family == AF_INET)
                r = asprintf(&c->address, "%s:%u", c->host, c->port);
        else
                r = asprintf(&c->address, "[%s%s%s]:%u", c->host, c->scope[0] ? "%" : "", c->scope, c->port);
        return r < 0 ? -ENOMEM : 0;
}

/* ---- DEV_PATH ---- */

static int parse_dev_path(const struct transport_entry *e, const char *p, struct smp_conn *c,
                          char **ret_reason) {
        char hint[64];

        usage_hint(e, hint, sizeof(hint));
        if (p[0] != '/')
                return reason_set(ret_reason, -EINVAL, "'%s' is not an absolute path under /dev/ (%s)", p, hint);
        if (strncmp(p, "/dev/", 5) != 0)
                return reason_set(ret_reason, -EINVAL, "'%s' is not under /dev/ (%s)", p, hint);
        for (const char *comp = p + 5;;) {
                size_t n = strcspn(comp, "/");
                if (n == 0)
                        return reason_set(ret_reason, -EINVAL, "'%s' has an empty path component", p);
                if ((n == 1 && comp[0] == '.') || (n == 2 && comp[0] == '.' && comp[1] == '.'))
                        return reason_set(ret_reason, -EINVAL, "'%s' has a '%.*s' component: device paths are "
                                          "written without '.' and '..'", p, (int) n, comp);
                for (size_t i = 0; i < n; i++)
                        if (!((comp[i] >= 'a' && comp[i] <= 'z') || (comp[i] >= 'A' && comp[i] <= 'Z') ||
                              (comp[i] >= '0' && comp[i] <= '9') || strchr(PATH_PUNCT, comp[i])))
                                return reason_set(ret_reason, -EINVAL,
                                                  "'%c' in '%s' is not allowed in a device path (letters, "
                                                  "digits and %s)",
                                                  comp[i], p, PATH_PUNCT);
                if (!comp[n])
                        break;
                comp += n + 1;
        }
        c->address = strdup(p);
        return c->address ? 0 : -ENOMEM;
}

/* ---- BDADDR ---- */

static int parse_bdaddr(const struct transport_entry *e, const char *p, struct smp_conn *c, char **ret_reason) {
        bool ok = strlen(p) == 17;
        for (size_t i = 0; ok && i < 17; i++)
                ok = i % 3 == 2 ? p[i] == ':' : strchr("0123456789abcdefABCDEF", p[i]) != NULL;
        if (!ok)
                return reason_set(ret_reason, -EINVAL,
                                  "'%s' is not a Bluetooth address (six hex octets: AA:BB:CC:DD:EE:FF)", p);
        for (size_t i = 0; i < 17; i++)
                c->bdaddr[i] = (char) (p[i] >= 'a' && p[i] <= 'f' ? p[i] - 'a' + 'A' : p[i]);
        c->bdaddr[17] = 0;
        c->address = strdup(c->bdaddr);
        return c->address ? 0 : -ENOMEM;
}

/* ---- options ---- */

static const struct smp_conn_option *option_decl(const struct smp_conn_syntax *syn, const char *name,
                                                 size_t len, size_t *ret_index) {
        for (size_t i = 0; i < syn->n_options; i++)
                if (strlen(syn->options[i].name) == len && memcmp(syn->options[i].name, name, len) == 0) {
                        *ret_index = i;
                        return &syn->options[i];
                }
        return NULL;
}

/* "mtu, baud" or "" */
static void option_names(const struct smp_conn_syntax *syn, char *buf, size_t size) {
        size_t off = 0;
        buf[0] = 0;
        for (size_t i = 0; i < syn->n_options && off < size; i++)
                off += (size_t) snprintf(buf + off, size - off, "%s%s", i ? ", " : "", syn->options[i].name);
}

static int parse_option_value(const struct smp_conn_option *o, const char *v, struct option_value *ret,
                              char **ret_reason) {
        uint64_t n;
        int r;

        switch (o->type) {
        case SMP_CONN_OPTION_UINT:
                r = smp_parse_uint(v, o->min, o->max, &n);
                if (r == -EINVAL)
                        return reason_set(ret_reason, -EINVAL, "%s='%s': '%s' is not a number", o->name, v, v);
                if (r < 0)
                        return reason_set(ret_reason, -EINVAL, "%s=%s is out of range (%" PRIu64 " to %" PRIu64 ")",
                                          o->name, v, o->min, o->max);
                if (o->allowed) {
                        bool found = false;
                        for (size_t i = 0; i < o->n_allowed && !found; i++)
                                found = o->allowed[i] == n;
                        if (!found) {
                                char list[512];
                                size_t off = 0;
                                list[0] = 0;
                                for (size_t i = 0; i < o->n_allowed && off < sizeof(list); i++)
                                        off += (size_t) snprintf(list + off, sizeof(list) - off, "%s%" PRIu64,
                                                                 i ? " " : "", o->allowed[i]);
                                return reason_set(ret_reason, -EINVAL, "%s=%s is not one of %s", o->name, v, list);
                        }
                }
                ret->number = n;
                snprintf(ret->text, sizeof(ret->text), "%" PRIu64, n);
                return 0;

        case SMP_CONN_OPTION_WORD:
                for (size_t i = 0; o->words && o->words[i]; i++)
                        if (streq(o->words[i], v)) {
                                ret->number = i;
                                snprintf(ret->text, sizeof(ret->text), "%s", v);
                                return 0;
                        }
                {
                        char list[256];
                        size_t off = 0;
                        list[0] = 0;
                        for (size_t i = 0; o->words && o->words[i] && off < sizeof(list); i++)
                                off += (size_t) snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "",
                                                         o->words[i]);
                        return reason_set(ret_reason, -EINVAL, "%s='%s' is not one of %s", o->name, v, list);
                }

        case SMP_CONN_OPTION_INDEXED: {
                size_t plen = strlen(o->prefix);
                if (strncmp(v, o->prefix, plen) != 0 || (r = smp_parse_uint(v + plen, o->min, o->max, &n)) == -EINVAL)
                        return reason_set(ret_reason, -EINVAL, "%s='%s' is not %sN (such as %s%" PRIu64 ")", o->name,
                                          v, o->prefix, o->prefix, o->min);
                if (r < 0)
                        return reason_set(ret_reason, -EINVAL, "%s=%s: %s%s is out of range (%s%" PRIu64 " to %s%" PRIu64
                                          ")", o->name, v, o->prefix, v + plen, o->prefix, o->min, o->prefix, o->max);
                ret->number = n;
                snprintf(ret->text, sizeof(ret->text), "%s%" PRIu64, o->prefix, n);
                return 0;
        }
        }
        return -EINVAL;
}

static int parse_options(const struct transport_entry *e, const char *opts, struct smp_conn *c,
                         char **ret_reason) {
        const struct smp_conn_syntax *syn = e->transport->conn_syntax;
        char names[256];
        int r;

        /* opts points at the first ',' (or is NULL). */
        for (const char *p = opts; p;) {
                p++;
                const char *next = strchr(p, ',');
                size_t len = next ? (size_t) (next - p) : strlen(p);
                char opt[SMP_CONN_MAX + 1];

                memcpy(opt, p, len);
                opt[len] = 0;
                if (len == 0)
                        return reason_set(ret_reason, -EINVAL, "an empty option after ','");
                char *eq = strchr(opt, '=');
                size_t name_len = eq ? (size_t) (eq - opt) : len;
                size_t index;
                const struct smp_conn_option *o = option_decl(syn, opt, name_len, &index);
                if (!o) {
                        option_names(syn, names, sizeof(names));
                        return reason_set(ret_reason, -EINVAL, "unknown option '%.*s' (%s takes %s%s)", (int) name_len,
                                          opt, e->transport->name, names[0] ? "" : "no options", names);
                }
                if (!eq)
                        return reason_set(ret_reason, -EINVAL, "option '%s' has no value (%s=VALUE)", opt, opt);
                if (c->options[index].set)
                        return reason_set(ret_reason, -EINVAL, "option '%s' is given twice", o->name);
                r = parse_option_value(o, eq + 1, &c->options[index], ret_reason);
                if (r < 0)
                        return r;
                c->options[index].set = true;
                p = next;
        }
        return 0;
}

static bool syntax_valid(const struct smp_conn_syntax *syn) {
        if (!syn || syn->n_options > SMP_CONN_OPTIONS_MAX || (syn->n_options && !syn->options))
                return false;
        if (syn->address != SMP_CONN_ADDRESS_INET && syn->address != SMP_CONN_ADDRESS_DEV_PATH &&
            syn->address != SMP_CONN_ADDRESS_BDADDR)
                return false;
        for (size_t i = 0; i < syn->n_options; i++) {
                const struct smp_conn_option *o = &syn->options[i];
                if (!o->name || !*o->name || strspn(o->name, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(o->name))
                        return false;
                if (o->type == SMP_CONN_OPTION_WORD && !o->words)
                        return false;
                if (o->type == SMP_CONN_OPTION_INDEXED &&
                    (!o->prefix || !*o->prefix || strlen(o->prefix) > INDEXED_PREFIX_MAX))
                        return false;
                if (o->type > SMP_CONN_OPTION_INDEXED || (o->type != SMP_CONN_OPTION_WORD && o->min > o->max))
                        return false;
        }
        return true;
}

bool conn_syntax_valid(const struct smp_conn_syntax *syn) {
        return syntax_valid(syn);
}

int conn_parse(struct transport_entry *e, const char *address, struct smp_conn **ret, char **ret_reason) {
        const struct smp_conn_syntax *syn = e->transport->conn_syntax;
        char a[SMP_CONN_MAX + 1];
        int r;

        const char *comma = strchr(address, ',');
        size_t alen = comma ? (size_t) (comma - address) : strlen(address);
        memcpy(a, address, alen);
        a[alen] = 0;

        struct smp_conn *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->n_ref = 1;
        c->ctx = smp_context_ref(e->ctx);
        c->entry = e;
        c->kind = syn->address;
        c->family = AF_UNSPEC;

        switch (syn->address) {
        case SMP_CONN_ADDRESS_INET:
                r = parse_inet(e, a, c, ret_reason);
                break;
        case SMP_CONN_ADDRESS_DEV_PATH:
                r = parse_dev_path(e, a, c, ret_reason);
                break;
        case SMP_CONN_ADDRESS_BDADDR:
                r = parse_bdaddr(e, a, c, ret_reason);
                break;
        default:
                r = -EINVAL;
        }
        if (r >= 0)
                r = parse_options(e, comma, c, ret_reason);
        if (r >= 0) {
                /* The canonical form: options in declaration order. */
                size_t size = strlen(e->transport->name) + 1 + strlen(c->address) + 1;
                for (size_t i = 0; i < syn->n_options; i++)
                        if (c->options[i].set)
                                size += 2 + strlen(syn->options[i].name) + strlen(c->options[i].text);
                c->string = malloc(size);
                if (!c->string)
                        r = -ENOMEM;
                else {
                        size_t off = (size_t) snprintf(c->string, size, "%s:%s", e->transport->name, c->address);
                        for (size_t i = 0; i < syn->n_options; i++)
                                if (c->options[i].set)
                                        off += (size_t) snprintf(c->string + off, size - off, ",%s=%s",
                                                                 syn->options[i].name, c->options[i].text);
                }
        }
        if (r >= 0 && strlen(c->string) > SMP_CONN_MAX)
                /* Only defaults written out can grow a string this much. */
                r = reason_set(ret_reason, -EINVAL, "longer than %u bytes once written out", SMP_CONN_MAX);
        if (r >= 0 && syn->check) {
                char *why = NULL;
                r = syn->check(c, &why);
                if (r < 0) {
                        if (ret_reason && why)
                                *ret_reason = why;
                        else
                                free(why);
                        r = -EINVAL;
                }
        }
        if (r < 0) {
                smp_conn_unref(c);
                return r;
        }
        *ret = c;
        return 0;
}

struct transport_entry *conn_get_entry(const struct smp_conn *conn) {
        return conn->entry;
}

struct smp_conn *smp_conn_ref(struct smp_conn *c) {
        if (c)
                c->n_ref++;
        return c;
}

struct smp_conn *smp_conn_unref(struct smp_conn *c) {
        if (!c || --c->n_ref > 0)
                return NULL;
        free(c->string);
        free(c->address);
        smp_context_unref(c->ctx);
        free(c);
        return NULL;
}

const char *smp_conn_get_string(const struct smp_conn *c) {
        return c->string;
}

const char *smp_conn_get_scheme(const struct smp_conn *c) {
        return c->entry->transport->name;
}

const char *smp_conn_get_address(const struct smp_conn *c) {
        return c->address;
}

enum smp_conn_address smp_conn_get_address_kind(const struct smp_conn *c) {
        return c->kind;
}

const struct smp_transport *smp_conn_get_transport(const struct smp_conn *c) {
        return c->entry->transport;
}

const char *smp_conn_get_host(const struct smp_conn *c) {
        return c->kind == SMP_CONN_ADDRESS_INET ? c->host : NULL;
}

int smp_conn_get_family(const struct smp_conn *c) {
        return c->kind == SMP_CONN_ADDRESS_INET ? c->family : AF_UNSPEC;
}

uint16_t smp_conn_get_port(const struct smp_conn *c) {
        return c->kind == SMP_CONN_ADDRESS_INET ? c->port : 0;
}

const char *smp_conn_get_scope(const struct smp_conn *c) {
        return c->kind == SMP_CONN_ADDRESS_INET ? c->scope : NULL;
}

int smp_conn_get_sockaddr(const struct smp_conn *c, struct sockaddr_storage *ret, socklen_t *ret_len) {
        if (c->kind != SMP_CONN_ADDRESS_INET)
                return -EAFNOSUPPORT;
        memset(ret, 0, sizeof(*ret));
        if (c->family == AF_INET) {
                struct sockaddr_in *in4 = (struct sockaddr_in *) ret;
                in4->sin_family = AF_INET;
                in4->sin_addr = c->v4;
                in4->sin_port = htons(c->port);
                *ret_len = sizeof(*in4);
                return 0;
        }
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ret;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = c->v6;
        in6->sin6_port = htons(c->port);
        if (c->scope[0]) {
                in6->sin6_scope_id = if_nametoindex(c->scope);
                if (in6->sin6_scope_id == 0)
                        return -ENODEV;
        }
        *ret_len = sizeof(*in6);
        return 0;
}

const char *smp_conn_get_path(const struct smp_conn *c) {
        return c->kind == SMP_CONN_ADDRESS_DEV_PATH ? c->address : NULL;
}

const char *smp_conn_get_bdaddr(const struct smp_conn *c) {
        return c->kind == SMP_CONN_ADDRESS_BDADDR ? c->bdaddr : NULL;
}

static const struct option_value *option_value(const struct smp_conn *c, const char *name) {
        const struct smp_conn_syntax *syn = c->entry->transport->conn_syntax;
        size_t index;
        if (!name || !option_decl(syn, name, strlen(name), &index) || !c->options[index].set)
                return NULL;
        return &c->options[index];
}

const char *smp_conn_get_option(const struct smp_conn *c, const char *name) {
        const struct option_value *v = option_value(c, name);
        return v ? v->text : NULL;
}

bool smp_conn_get_option_uint(const struct smp_conn *c, const char *name, uint64_t *ret) {
        const struct option_value *v = option_value(c, name);
        if (!v)
                return false;
        if (ret)
                *ret = v->number;
        return true;
}
