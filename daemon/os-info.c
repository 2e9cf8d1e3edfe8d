/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * OS info answers into a board and an application (os-info.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "os-info.h"
#include "util.h"

#define OS_INFO_WORDS_MAX 64u

/* Zephyr's CONFIG_ARCH values (arch/Kconfig). */
struct word {
        const char *p;
        size_t len;
};

/* With their lengths: every device of a device page is parsed (its board
 * and application), and a strlen() per architecture per word was a tenth
 * of the page's time. */
#define ARCH(s) \
        { s, sizeof(s) - 1 }
static const struct word zephyr_arches[] = {
        ARCH("arc"),   ARCH("arm"),   ARCH("arm64"), ARCH("mips"),  ARCH("nios2"), ARCH("openrisc"),
        ARCH("posix"), ARCH("riscv"), ARCH("rx"),    ARCH("sparc"), ARCH("x86"),   ARCH("xtensa"),
};

static bool word_is_arch(const struct word *w) {
        for (size_t i = 0; i < ELEMENTSOF(zephyr_arches); i++)
                if (w->len == zephyr_arches[i].len && memcmp(w->p, zephyr_arches[i].p, w->len) == 0)
                        return true;
        return false;
}

static bool word_is_version(const struct word *w) {
        for (size_t i = 0; i + 2 < w->len; i++)
                if (isdigit((unsigned char) w->p[i]) && w->p[i + 1] == '.' && isdigit((unsigned char) w->p[i + 2]))
                        return true;
        return false;
}

/* "01:03:52" */
static bool word_is_time(const struct word *w) {
        return w->len == 8 && w->p[2] == ':' && w->p[5] == ':' && isdigit((unsigned char) w->p[0]) &&
               isdigit((unsigned char) w->p[7]);
}

/* "1973" */
static bool word_is_year(const struct word *w) {
        if (w->len != 4)
                return false;
        for (size_t i = 0; i < 4; i++)
                if (!isdigit((unsigned char) w->p[i]))
                        return false;
        return true;
}

static size_t split_words(const char *s, struct word *words, size_t max) {
        size_t n = 0;

        while (*s && n < max) {
                while (*s == ' ')
                        s++;
                if (!*s)
                        break;
                words[n].p = s;
                while (*s && *s != ' ')
                        s++;
                words[n].len = (size_t) (s - words[n].p);
                n++;
        }
        return n;
}

static void copy_field(char *dst, const char *src, size_t len) {
        /* A name longer than the field is left unknown, never cut: a cut
         * one could equal another board's name. */
        if (len == 0 || len >= OS_INFO_FIELD_SIZE) {
                dst[0] = '\0';
                return;
        }
        memcpy(dst, src, len);
        dst[len] = '\0';
}

static void span_set(const char *base, const char *p, size_t len, uint16_t *ret_offset, uint16_t *ret_len) {
        size_t offset = (size_t) (p - base);

        /* As copy_field(): too long is unknown. */
        if (len == 0 || len >= OS_INFO_FIELD_SIZE || offset > UINT16_MAX)
                return;
        *ret_offset = (uint16_t) offset;
        *ret_len = (uint16_t) len;
}

void os_info_locate(const char *os_info, struct os_info_spans *ret) {
        struct word words[OS_INFO_WORDS_MAX];
        size_t n;

        *ret = (struct os_info_spans) {};
        if (!os_info)
                return;
        n = split_words(os_info, words, ELEMENTSOF(words));
        /* kernel name, node name, release, version: the machine is the
         * fifth word at the earliest. */
        for (size_t k = 4; k + 2 < n; k++) {
                const struct word *before = &words[k - 1];
                if (!word_is_arch(&words[k]))
                        continue;
                if (!word_is_version(before) && !word_is_time(before) && !word_is_year(before))
                        continue;
                span_set(os_info, words[k + 2].p, words[k + 2].len, &ret->board_offset, &ret->board_len);
                if (k + 3 < n) {
                        const char *app = words[k + 3].p;
                        size_t len = strlen(app);
                        while (len > 0 && app[len - 1] == ' ')
                                len--;
                        span_set(os_info, app, len, &ret->app_offset, &ret->app_len);
                }
                return;
        }
}

int os_info_parse(const char *os_info, struct os_info_fields *ret) {
        struct os_info_spans spans;

        *ret = (struct os_info_fields) {};
        if (!os_info)
                return -ENODATA;
        os_info_locate(os_info, &spans);
        copy_field(ret->board, os_info + spans.board_offset, spans.board_len);
        copy_field(ret->app, os_info + spans.app_offset, spans.app_len);
        return ret->board[0] ? 0 : -ENODATA;
}
