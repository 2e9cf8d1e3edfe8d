/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Connection strings: the one parser and validator every transport,
 * smpgwctl, smpgwd's REST and D-Bus APIs and its configuration go through.
 * The grammar and its reasons are in doc/connection-strings.md; in short:
 *
 *   conn    = scheme ":" address *( "," name "=" value )
 *
 * at most SMP_CONN_MAX bytes, printable ASCII only (no spaces, no control
 * characters, nothing beyond ASCII).  scheme names the transport; the
 * transport declares what its address is and which options it takes
 * (struct smp_conn_syntax), with a type and bounds for each value:
 *
 *   SMP_CONN_ADDRESS_INET    HOST[:PORT]: an IPv4 address (a.b.c.d), an
 *                            IPv6 address in brackets ([2001:db8::1], a
 *                            link-local one with its interface:
 *                            [fe80::1%eth0]) or "localhost" (127.0.0.1).
 *                            Host names are refused: resolving them would
 *                            block the event loop, and their answer may
 *                            change, while a device's identity must not.
 *                            PORT is 1..65535; it may be left out only
 *                            when the transport has a default port.
 *   SMP_CONN_ADDRESS_DEV_PATH  an absolute path under /dev/ of
 *                            [A-Za-z0-9._+:@-] components, none of them
 *                            empty, "." or "..".
 *   SMP_CONN_ADDRESS_BDADDR  a Bluetooth device address, six hex octets
 *                            separated by ':' (AA:BB:CC:DD:EE:FF).
 *
 * Each string has one canonical form: the address written the one way
 * inet_ntop() writes it (IPv4-mapped IPv6 as IPv4, localhost as
 * 127.0.0.1), the default port written out, a Bluetooth address in upper
 * case, numbers without leading zeros, options in the order the transport
 * declares them.  Two strings with the same canonical form reach the same
 * device, and smpgwd keeps devices by it.
 *
 * A string that does not parse is refused with -EINVAL and a sentence that
 * names the part that is wrong ("port '99999' is out of range (1 to
 * 65535)"): lower case, no final period, made to follow "bad connection
 * string: ".  Parts quoted in it are printable ASCII (anything else is
 * refused before parts are quoted), so the sentence is safe to log and to
 * show.
 *
 * Parsed connection strings (struct smp_conn) come from a context, which
 * knows the transports: smp_context_parse_conn() in smp-context.h.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Connection strings longer than this are refused. */
#define SMP_CONN_MAX 256u
/* A scheme is at most this long (letters a-z and digits). */
#define SMP_CONN_SCHEME_MAX 31u
/* Options a transport may declare. */
#define SMP_CONN_OPTIONS_MAX 16u

struct smp_conn;
struct smp_transport;

enum smp_conn_address {
        SMP_CONN_ADDRESS_INET,
        SMP_CONN_ADDRESS_DEV_PATH,
        SMP_CONN_ADDRESS_BDADDR,
};

enum smp_conn_option_type {
        /* A decimal number within min..max; when allowed is set, also one
         * of its n_allowed values (a baud rate). */
        SMP_CONN_OPTION_UINT,
        /* One of the words in words[] (NULL-terminated). */
        SMP_CONN_OPTION_WORD,
        /* prefix followed by a decimal number within min..max ("hci0"). */
        SMP_CONN_OPTION_INDEXED,
};

struct smp_conn_option {
        const char *name;              /* [a-z][a-z0-9-]* */
        enum smp_conn_option_type type;
        uint64_t min, max;             /* UINT, INDEXED */
        const uint64_t *allowed;       /* UINT, optional */
        size_t n_allowed;
        const char *const *words;      /* WORD */
        const char *prefix;            /* INDEXED */
};

struct smp_conn_syntax {
        enum smp_conn_address address;
        /* INET: the port when none is given; 0: a port is required. */
        uint16_t default_port;
        const struct smp_conn_option *options;
        size_t n_options;              /* at most SMP_CONN_OPTIONS_MAX */
        /* What the declarations cannot say (an mtu whose bound depends on
         * the address family), checked after them: 0, or -EINVAL with a
         * sentence in *ret_reason (malloc()ed).  May be NULL. */
        int (*check)(const struct smp_conn *conn, char **ret_reason);
};

/* Parsed connection strings are immutable and reference counted.  They
 * hold a reference on the context they were parsed by. */
struct smp_conn *smp_conn_ref(struct smp_conn *conn);
struct smp_conn *smp_conn_unref(struct smp_conn *conn);

/* "udp:127.0.0.1:1337,mtu=512": the canonical form. */
const char *smp_conn_get_string(const struct smp_conn *conn);
/* "udp" */
const char *smp_conn_get_scheme(const struct smp_conn *conn);
/* The canonical address without scheme and options: "127.0.0.1:1337",
 * "[fe80::1%eth0]:5683", "/dev/ttyACM0", "AA:BB:CC:DD:EE:FF". */
const char *smp_conn_get_address(const struct smp_conn *conn);
enum smp_conn_address smp_conn_get_address_kind(const struct smp_conn *conn);
/* The transport that parsed it (a context's). */
const struct smp_transport *smp_conn_get_transport(const struct smp_conn *conn);

/* INET: the host as inet_ntop() writes it, without brackets and scope
 * ("127.0.0.1", "fe80::1"); its family (AF_INET, AF_INET6); the port;
 * the interface of a link-local address ("" when none).  Other kinds:
 * NULL, AF_UNSPEC, 0, NULL. */
const char *smp_conn_get_host(const struct smp_conn *conn);
int smp_conn_get_family(const struct smp_conn *conn);
uint16_t smp_conn_get_port(const struct smp_conn *conn);
const char *smp_conn_get_scope(const struct smp_conn *conn);
/* INET: the socket address to connect to, the interface of a link-local
 * address resolved to its index now.  -ENODEV: no such interface (any
 * more); -EAFNOSUPPORT: not an INET address. */
int smp_conn_get_sockaddr(const struct smp_conn *conn, struct sockaddr_storage *ret, socklen_t *ret_len);

/* DEV_PATH: the path; BDADDR: the address in upper case.  Else NULL. */
const char *smp_conn_get_path(const struct smp_conn *conn);
const char *smp_conn_get_bdaddr(const struct smp_conn *conn);

/* An option's canonical value ("512", "notify", "hci0"), or NULL when
 * the string does not give it (or the transport does not declare it). */
const char *smp_conn_get_option(const struct smp_conn *conn, const char *name);
/* The number of a UINT or INDEXED option, the index in words[] of a WORD
 * option.  false when not given. */
bool smp_conn_get_option_uint(const struct smp_conn *conn, const char *name, uint64_t *ret);

#ifdef __cplusplus
}
#endif
