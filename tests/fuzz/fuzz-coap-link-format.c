/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The coap transport's discovery reads the link-format body of every
 * reply to its multicast GET /.well-known/core: bytes any host on the LAN
 * may send.  plugins/coap/coap-link-format.c is compiled in.
 *
 * Input: one byte choosing the resource type wanted (0: any, 1: the
 * default x.mynewt.nmgr, n > 1: a type of n % 63 + 1 bytes from the
 * input, kept to the characters discovery accepts in rt=), then either the body
 * as it is (scanned where it lies, so reading past it is caught) or, when
 * the type byte's top bit is set, a description of a well-formed listing
 * that does hold a matching /omgr link, which must then be found. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coap-link-format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RT_DEFAULT "x.mynewt.nmgr"
#define RT_MAX 63u
static const char rt_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:";

/* Appends to a listing being built, bounded. */
struct body {
        char text[16384];
        size_t len;
        bool full;
};

static void put(struct body *b, const char *s, size_t n) {
        if (b->len + n > sizeof(b->text)) {
                b->full = true;
                return;
        }
        memcpy(b->text + b->len, s, n);
        b->len += n;
}

static void puts_(struct body *b, const char *s) {
        put(b, s, strlen(s));
}

/* Printable bytes that cannot end a link, a parameter or a value. */
static void put_word(struct body *b, const uint8_t *in, size_t n, bool quoted) {
        for (size_t i = 0; i < n; i++) {
                char c = (char) (in[i] % 94 + 33);
                if (c == ',' || c == ';' || c == '"' || c == '\\' || c == '>' || c == '<' || c == '=')
                        c = quoted ? ' ' : 'x';
                put(b, &c, 1);
        }
}

/* A well-formed listing of up to COAP_LINK_FORMAT_LINKS_MAX links, one of
 * them /omgr with the wanted type among the words of a (quoted or not)
 * rt, the others anything else well-formed. */
static void check_generated(const uint8_t *in, size_t n, const char *rt) {
        struct body *b = calloc(1, sizeof(*b));
        assert(b);
        size_t pos = 0;
        uint8_t n_links = n > 0 ? in[pos++] % COAP_LINK_FORMAT_LINKS_MAX + 1 : 1;
        uint8_t omgr_at = n > pos ? in[pos++] % n_links : 0;

        for (uint8_t l = 0; l < n_links && !b->full; l++) {
                uint8_t shape = pos < n ? in[pos++] : 0;
                size_t wlen = pos < n ? in[pos++] % 16 : 0;
                const uint8_t *w = in + pos;
                wlen = pos + wlen <= n ? wlen : n - pos;
                pos += wlen;

                if (l)
                        puts_(b, ",");
                if (l == omgr_at) {
                        puts_(b, "</omgr>");
                        if (shape & 1)
                                puts_(b, ";ct=60;if");
                        if (*rt) {
                                bool quoted = shape & 2;
                                puts_(b, quoted ? ";rt=\"" : ";rt=");
                                if (quoted && (shape & 4)) {
                                        put_word(b, w, wlen, true);
                                        puts_(b, " ");
                                }
                                puts_(b, rt);
                                if (quoted && (shape & 8)) {
                                        puts_(b, " ");
                                        put_word(b, w, wlen, true);
                                }
                                if (quoted)
                                        puts_(b, "\"");
                        }
                        if (shape & 16)
                                puts_(b, ";obs");
                        continue;
                }
                puts_(b, "<");
                puts_(b, shape & 1 ? "/omgr/x" : "/");
                put_word(b, w, wlen, false);
                puts_(b, ">");
                if (shape & 2) {
                        puts_(b, ";rt=\"");
                        put_word(b, w, wlen, true);
                        puts_(b, "\\\"\"");
                }
                if (shape & 4) {
                        puts_(b, ";title=");
                        put_word(b, w, wlen, false);
                }
                if (shape & 8)
                        puts_(b, ";sz");
        }
        if (!b->full) {
                /* The exact length: anything read past it is caught. */
                char *exact = malloc(b->len ? b->len : 1);
                assert(exact);
                memcpy(exact, b->text, b->len);
                if (!coap_link_format_lists_omgr(exact, b->len, rt)) {
                        fprintf(stderr, "rt '%s' not found in '%.*s'\n", rt, (int) b->len, b->text);
                        abort();
                }
                free(exact);
        }
        free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char rt[RT_MAX + 1];

        if (size < 1)
                return 0;
        uint8_t sel = data[0];
        size_t pos = 1;
        size_t want = sel & 0x7f;
        if (want == 0)
                rt[0] = 0;
        else if (want == 1)
                snprintf(rt, sizeof(rt), "%s", RT_DEFAULT);
        else {
                want = want % RT_MAX + 1;
                if (size < pos + want)
                        return 0;
                for (size_t i = 0; i < want; i++) {
                        char c = (char) data[pos + i];
                        rt[i] = c && strchr(rt_chars, c) ? c : rt_chars[data[pos + i] % (sizeof(rt_chars) - 1)];
                }
                rt[want] = 0;
                pos += want;
        }

        if (sel & 0x80) {
                check_generated(data + pos, size - pos, rt);
                return 0;
        }

        const char *p = (const char *) data + pos;
        size_t n = size - pos;
        if (coap_link_format_lists_omgr(p, n, rt)) {
                /* Found means it is there. */
                assert(memmem(p, n, "</omgr>", 7));
                if (*rt)
                        assert(memmem(p, n, rt, strlen(rt)));
        }
        return 0;
}
