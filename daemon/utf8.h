/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The code point of the UTF-8 sequence at s (at most n bytes), in
 * *ret; its length, or 0 when it is not one RFC 3629 allows (overlong
 * forms, surrogates, past U+10FFFF, cut off).  A NUL ends a sequence
 * as any other non-continuation byte does, so a NUL-terminated string
 * may be read with n = 4. */
size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *ret);
