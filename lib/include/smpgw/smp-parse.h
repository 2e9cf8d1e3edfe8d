/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The one parser for numbers people type: command line options, values in
 * connection strings, discovery arguments.  Plain decimal digits only: no
 * sign, no spaces, no "0x", no suffix, so " 5", "+5" and "5k" are refused
 * rather than read as something nobody meant; leading zeros are fine.
 * Values past UINT64_MAX are out of range, not wrapped.
 *
 * Also here: freeing the NULL-terminated string arrays the listing
 * functions return.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Parses the NUL-terminated s as a decimal number within min..max.
 * -EINVAL: empty, or not only digits; -ERANGE: a number outside
 * min..max.  *ret is written only on success. */
int smp_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *ret);

/* The same for the len bytes at s (a piece of a longer string). */
int smp_parse_uint_n(const char *s, size_t len, uint64_t min, uint64_t max, uint64_t *ret);

/* Frees a NULL-terminated array of strings and the strings; NULL is fine. */
void smp_strv_free(char **strv);

#ifdef __cplusplus
}
#endif
