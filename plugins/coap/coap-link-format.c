/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Link-format (RFC 6690) as the coap transport's discovery reads it: one
 * pass over the reply, nothing copied, never past its length.
 */
#include <string.h>

#include "coap-link-format.h"

static bool rt_lists(const char *value, size_t n, const char *rt) {
        /* rt is a space-separated list (RFC 6690 §3.1). */
        size_t want = strlen(rt), i = 0;
        while (i < n) {
                while (i < n && value[i] == ' ')
                        i++;
                size_t start = i;
                while (i < n && value[i] != ' ')
                        i++;
                if (i - start == want && memcmp(value + start, rt, want) == 0)
                        return true;
        }
        return false;
}

bool coap_link_format_lists_omgr(const char *p, size_t n, const char *rt) {
        size_t i = 0;

        for (unsigned links = 0; links < COAP_LINK_FORMAT_LINKS_MAX && i < n; links++) {
                if (p[i] != '<')
                        return false;
                const char *target = p + i + 1;
                const char *close = memchr(target, '>', n - i - 1);
                if (!close)
                        return false;
                size_t target_len = (size_t) (close - target);
                bool is_omgr = target_len == 5 && memcmp(target, "/omgr", 5) == 0;
                bool rt_ok = !*rt;
                i = (size_t) (close - p) + 1;

                while (i < n && p[i] == ';') {
                        i++;
                        size_t name = i;
                        while (i < n && p[i] != '=' && p[i] != ';' && p[i] != ',')
                                i++;
                        size_t name_len = i - name;
                        if (i >= n || p[i] != '=')
                                continue; /* a flag without value */
                        i++;
                        const char *value;
                        size_t value_len;
                        if (i < n && p[i] == '"') {
                                value = p + ++i;
                                while (i < n && p[i] != '"')
                                        i += p[i] == '\\' ? 2 : 1;
                                if (i >= n)
                                        return false;
                                value_len = (size_t) (p + i - value);
                                i++;
                        } else {
                                value = p + i;
                                while (i < n && p[i] != ';' && p[i] != ',')
                                        i++;
                                value_len = (size_t) (p + i - value);
                        }
                        if (name_len == 2 && memcmp(p + name, "rt", 2) == 0 && *rt &&
                            rt_lists(value, value_len, rt))
                                rt_ok = true;
                }
                if (is_omgr && rt_ok)
                        return true;
                if (i < n && p[i] != ',')
                        return false;
                i++;
        }
        return false;
}
