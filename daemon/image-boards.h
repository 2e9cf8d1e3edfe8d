/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The boards an image is built for, and whether a device's board is one
 * of them.  MCUboot images carry no board, so the operator declares the
 * list when storing the image (or later); an empty list is any board.
 *
 * A device tells its board in its OS info answer (os-info.h): Zephyr's
 * CONFIG_BOARD, with "@" and CONFIG_BOARD_REVISION when the board has
 * revisions.  A declared board without a revision ("nrf52840dk") takes
 * every revision of that board ("nrf52840dk", "nrf52840dk@1.0.0"); one
 * with a revision ("nrf52840dk@1.0.0") only that revision.  Names are
 * compared without regard to case, as the rollout filter's board term.
 *
 * Pure: the image store, the engine's push check and the rollout policy
 * all decide with these.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "smpgwd-limits.h"

/* A board name as a device reports it: 1..IMAGE_BOARD_NAME_MAX bytes of
 * [A-Za-z0-9_./-], at most one '@' (the revision) with a name before
 * and a revision after it. */
bool image_board_name_is_valid(const char *name);
/* Whether a device reporting board `reported` is one `declared` names
 * (the rules above).  A NULL or empty reported board matches nothing. */
bool image_board_matches(const char *declared, const char *reported);
/* Whether an image declaring boards[0..n) may go to a device reporting
 * `reported`: n == 0 (any board), or one of them matches.  A device that
 * does not know its board (NULL) is accepted only when n == 0. */
bool image_boards_accept(const char *const *boards, size_t n, const char *reported);
/* Checks a list as a client gives it: at most IMAGE_BOARDS_MAX names,
 * each valid.  -EINVAL with *ret_index the first invalid name, -E2BIG
 * too many distinct names. */
int image_boards_check(const char *const *boards, size_t n, size_t *ret_index);
/* The list as it is kept: valid names, duplicates (by case) dropped, in
 * the order given.  *ret is a NULL-terminated array (free with
 * image_boards_free()), NULL for an empty list.  Errors as
 * image_boards_check(), -ENOMEM. */
int image_boards_normalize(const char *const *boards, size_t n, char ***ret, size_t *ret_n, size_t *ret_index);
/* The database's spelling: the names joined by one space ("" for none);
 * a board name has no spaces.  NULL when out of memory. */
char *image_boards_join(const char *const *boards, size_t n);
/* Back from that spelling; names that are not valid are dropped. */
int image_boards_split(const char *text, char ***ret, size_t *ret_n);
/* Frees such an array; NULL is fine. */
void image_boards_free(char **boards, size_t n);
