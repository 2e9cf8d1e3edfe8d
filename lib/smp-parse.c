/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "smpgw/smp-parse.h"

int smp_parse_uint_n(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *ret) {
        uint64_t v = 0;
        bool overflow = false;

        if (!s || len == 0)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                unsigned digit = (unsigned) (s[i] - '0');
                /* Keep reading after an overflow: "99999999999999999999x"
                 * is not a number at all, which says more than "too big". */
                if (v > (UINT64_MAX - digit) / 10)
                        overflow = true;
                else
                        v = v * 10 + digit;
        }
        if (overflow || v < min || v > max)
                return -ERANGE;
        if (ret)
                *ret = v;
        return 0;
}

int smp_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *ret) {
        if (!s)
                return -EINVAL;
        return smp_parse_uint_n(s, strlen(s), min, max, ret);
}

void smp_strv_free(char **strv) {
        if (!strv)
                return;
        for (char **s = strv; *s; s++)
                free(*s);
        free(strv);
}
