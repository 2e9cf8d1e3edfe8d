/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Connection strings, the door every outside string goes through (REST,
 * D-Bus, the configuration, smpgwctl, discovery results): the context's
 * parser with the four real transports and their real syntax tables (the
 * plugins' sources are compiled into this program, see meson.build).
 *
 * A string accepted has a canonical form that is printable ASCII within
 * SMP_CONN_MAX, parses again to itself, and whose accessors agree with
 * its kind; a string refused comes with a sentence that is printable
 * ASCII (it is logged and shown as it is). */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smpgw/smp-context.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern const struct smp_transport fuzz_transport_udp, fuzz_transport_serial;
#if FUZZ_HAVE_COAP
extern const struct smp_transport fuzz_transport_coap;
#endif
#if FUZZ_HAVE_BLE
extern const struct smp_transport fuzz_transport_ble;
#endif

static struct smp_context *ctx;

static void context_setup(void) {
        if (ctx)
                return;
        /* Nothing on disk: an unknown scheme is refused after one lookup
         * in a directory that does not exist, the same every time. */
        if (smp_context_new(&ctx) < 0 || smp_context_set_plugin_path(ctx, "/nonexistent/smpgw-fuzz") < 0 ||
            smp_context_add_transport(ctx, &fuzz_transport_udp) < 0 ||
            smp_context_add_transport(ctx, &fuzz_transport_serial) < 0 ||
#if FUZZ_HAVE_COAP
            smp_context_add_transport(ctx, &fuzz_transport_coap) < 0 ||
#endif
#if FUZZ_HAVE_BLE
            smp_context_add_transport(ctx, &fuzz_transport_ble) < 0 ||
#endif
            false)
                abort();
}

static void assert_printable(const char *s, size_t max) {
        size_t n = strlen(s);
        assert(n <= max);
        for (size_t i = 0; i < n; i++)
                assert(s[i] >= 0x20 && s[i] < 0x7f);
}

static void check_accepted(struct smp_conn *c, const char *input) {
        const char *canon = smp_conn_get_string(c);
        const struct smp_transport *t = smp_conn_get_transport(c);
        const struct smp_conn_syntax *syn = t->conn_syntax;

        assert_printable(canon, SMP_CONN_MAX);
        assert(!strchr(canon, ' '));
        size_t scheme_len = strlen(t->name);
        assert(strncmp(canon, t->name, scheme_len) == 0 && canon[scheme_len] == ':');
        assert(streq(smp_conn_get_scheme(c), t->name));
        /* The scheme of the input, too: the context never parses a
         * string with another transport's grammar. */
        assert(strncmp(input, t->name, scheme_len) == 0 && input[scheme_len] == ':');

        const char *address = smp_conn_get_address(c);
        assert(address && strncmp(canon + scheme_len + 1, address, strlen(address)) == 0);
        assert(smp_conn_get_address_kind(c) == syn->address);

        struct sockaddr_storage ss;
        socklen_t ss_len;
        switch (syn->address) {
        case SMP_CONN_ADDRESS_INET: {
                int family = smp_conn_get_family(c);
                assert(family == AF_INET || family == AF_INET6);
                assert(smp_conn_get_port(c) >= 1);
                assert(smp_conn_get_host(c) && smp_conn_get_scope(c));
                assert(!smp_conn_get_path(c) && !smp_conn_get_bdaddr(c));
                int r = smp_conn_get_sockaddr(c, &ss, &ss_len);
                /* -ENODEV: a scope naming an interface this machine lacks. */
                assert(r == 0 || (r == -ENODEV && smp_conn_get_scope(c)[0]));
                if (r == 0)
                        assert(ss.ss_family == family);
                break;
        }
        case SMP_CONN_ADDRESS_DEV_PATH:
                assert(smp_conn_get_path(c) && strncmp(smp_conn_get_path(c), "/dev/", 5) == 0);
                assert(!strstr(smp_conn_get_path(c), "/../") && !strstr(smp_conn_get_path(c), "//"));
                assert(!smp_conn_get_host(c) && smp_conn_get_family(c) == AF_UNSPEC);
                assert(smp_conn_get_sockaddr(c, &ss, &ss_len) == -EAFNOSUPPORT);
                break;
        case SMP_CONN_ADDRESS_BDADDR: {
                const char *b = smp_conn_get_bdaddr(c);
                assert(b && strlen(b) == 17);
                for (size_t i = 0; i < 17; i++)
                        assert(i % 3 == 2 ? b[i] == ':' : strchr("0123456789ABCDEF", b[i]) != NULL);
                assert(!smp_conn_get_path(c) && smp_conn_get_port(c) == 0);
                break;
        }
        }

        for (size_t i = 0; i < syn->n_options; i++) {
                const struct smp_conn_option *o = &syn->options[i];
                const char *text = smp_conn_get_option(c, o->name);
                uint64_t v = UINT64_MAX;
                bool has = smp_conn_get_option_uint(c, o->name, &v);
                assert(has == (text != NULL));
                if (!text)
                        continue;
                assert_printable(text, SMP_CONN_MAX);
                switch (o->type) {
                case SMP_CONN_OPTION_UINT:
                        assert(v >= o->min && v <= o->max);
                        break;
                case SMP_CONN_OPTION_INDEXED:
                        assert(v >= o->min && v <= o->max);
                        assert(strncmp(text, o->prefix, strlen(o->prefix)) == 0);
                        break;
                case SMP_CONN_OPTION_WORD:
                        assert(streq(o->words[v], text));
                        break;
                }
        }
        assert(!smp_conn_get_option(c, "no-such-option"));
        assert(!smp_conn_get_option(c, NULL));

        /* The canonical form is a fixed point. */
        struct smp_conn *again = NULL;
        char *why = NULL;
        int r = smp_context_parse_conn(ctx, canon, &again, &why);
        if (r < 0) {
                /* A sentence to go with the abort. */
                fprintf(stderr, "'%s' (from '%s') refused: %s\n", canon, input, why ? why : "?");
                abort();
        }
        assert(streq(smp_conn_get_string(again), canon));
        assert(streq(smp_conn_get_address(again), address));
        smp_conn_unref(again);
        free(why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char text[SMP_CONN_MAX + 16];
        struct smp_conn *c = NULL;
        char *why = NULL;

        if (size >= sizeof(text))
                return 0;
        context_setup();
        memcpy(text, data, size);
        text[size] = 0;

        int r = smp_context_parse_conn(ctx, text, &c, &why);
        if (r == 0) {
                assert(c && !why);
                check_accepted(c, text);
                smp_conn_unref(c);
        } else {
                assert(r == -EINVAL || r == -ENOENT);
                assert(why);
                assert_printable(why, 4096);
                free(why);
        }

        /* Without a sentence asked for: the same answer. */
        struct smp_conn *c2 = NULL;
        int r2 = smp_context_parse_conn(ctx, text, &c2, NULL);
        assert(r2 == r);
        smp_conn_unref(c2);
        return 0;
}
