/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An image's boards and the match with a device's board (image-boards.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "image-boards.h"
#include "util.h"

#define BOARD_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./-"

bool image_board_name_is_valid(const char *name) {
        size_t n = name ? strlen(name) : 0, at;

        if (n == 0 || n > IMAGE_BOARD_NAME_MAX)
                return false;
        at = strspn(name, BOARD_CHARS);
        if (at == n)
                return true;
        /* One '@' between a name and a revision. */
        return at > 0 && name[at] == '@' && at + 1 < n && strspn(name + at + 1, BOARD_CHARS) == n - at - 1;
}

bool image_board_matches(const char *declared, const char *reported) {
        const char *at;

        if (!declared || !reported || !reported[0])
                return false;
        if (strcasecmp(declared, reported) == 0)
                return true;
        /* "name" takes "name@<any revision>"; "name@rev" only itself. */
        if (strchr(declared, '@'))
                return false;
        at = strchr(reported, '@');
        return at && (size_t) (at - reported) == strlen(declared) &&
               strncasecmp(declared, reported, (size_t) (at - reported)) == 0;
}

bool image_boards_accept(const char *const *boards, size_t n, const char *reported) {
        if (n == 0)
                return true;
        for (size_t i = 0; i < n; i++)
                if (image_board_matches(boards[i], reported))
                        return true;
        return false;
}

static bool seen_before(const char *const *boards, size_t i) {
        for (size_t k = 0; k < i; k++)
                if (strcasecmp(boards[k], boards[i]) == 0)
                        return true;
        return false;
}

int image_boards_check(const char *const *boards, size_t n, size_t *ret_index) {
        size_t distinct = 0;

        for (size_t i = 0; i < n; i++) {
                if (!image_board_name_is_valid(boards[i])) {
                        if (ret_index)
                                *ret_index = i;
                        return -EINVAL;
                }
                if (!seen_before(boards, i))
                        distinct++;
        }
        return distinct > IMAGE_BOARDS_MAX ? -E2BIG : 0;
}

void image_boards_free(char **boards, size_t n) {
        for (size_t i = 0; boards && i < n; i++)
                free(boards[i]);
        free(boards);
}

int image_boards_normalize(const char *const *boards, size_t n, char ***ret, size_t *ret_n, size_t *ret_index) {
        char **copy;
        size_t k = 0;
        int r;

        r = image_boards_check(boards, n, ret_index);
        if (r < 0)
                return r;
        *ret = NULL;
        *ret_n = 0;
        if (n == 0)
                return 0;
        copy = calloc(n + 1, sizeof(char *));
        if (!copy)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (seen_before(boards, i))
                        continue;
                copy[k] = strdup(boards[i]);
                if (!copy[k]) {
                        image_boards_free(copy, k);
                        return -ENOMEM;
                }
                k++;
        }
        *ret = copy;
        *ret_n = k;
        return 0;
}

char *image_boards_join(const char *const *boards, size_t n) {
        size_t len = 1;
        char *s, *p;

        for (size_t i = 0; i < n; i++)
                len += strlen(boards[i]) + 1;
        s = p = malloc(len);
        if (!s)
                return NULL;
        *p = '\0';
        for (size_t i = 0; i < n; i++)
                p = stpcpy(stpcpy(p, i > 0 ? " " : ""), boards[i]);
        return s;
}

int image_boards_split(const char *text, char ***ret, size_t *ret_n) {
        _cleanup_free_ char *copy = strdup(text ? text : "");
        const char *words[IMAGE_BOARDS_MAX];
        char *save = NULL;
        size_t n = 0, index;

        if (!copy)
                return -ENOMEM;
        for (char *w = strtok_r(copy, " ", &save); w && n < IMAGE_BOARDS_MAX; w = strtok_r(NULL, " ", &save))
                if (image_board_name_is_valid(w))
                        words[n++] = w;
        return image_boards_normalize(words, n, ret, ret_n, &index);
}
