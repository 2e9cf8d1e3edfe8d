/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The fixed limits every door of smpgwd shares (REST, D-Bus, the
 * configuration, and whatever front end comes next): each is written
 * here once, and doc/smpgwd.md's limit table lists them.  The
 * configurable limits are keys of smpgwd.conf (conf.h).
 *
 * Not <limits.h>: a header of that name in daemon/ would stand in for
 * the C library's in every file built here.
 */
#pragma once

/* Devices one push names at most: a push is checked whole before its
 * first job is created, so this bounds what one request makes us look
 * at and write. */
#define PUSH_DEVICES_MAX 1000u

/* Attempts of one job: the push options and [jobs] attempts. */
#define JOB_ATTEMPTS_MIN 1u
#define JOB_ATTEMPTS_MAX 100u

/* A device's name is a label for people: at most this many bytes of
 * UTF-8, no control characters (device_name_check()). */
#define DEVICE_NAME_MAX 64

/* An image's name is a file name, not a document: bytes, no control
 * characters. */
#define IMAGE_NAME_MAX 255u

/* Clients name an image by its id, the image hash in hex (64 digits,
 * either case), or by a prefix of it as git takes short hashes.  A
 * prefix must be IMAGE_ID_PREFIX_MIN digits at least (24 bits: among
 * [images] max_count = 256 images two share one with a chance of about
 * 0.2 %) and fit one image only; an ambiguous prefix is refused, never
 * guessed. */
#define IMAGE_ID_LEN 64
#define IMAGE_ID_PREFIX_MIN 6

/* Lists: a page holds this many items unless the client asks for
 * another number, at most [rest] page_max (default PAGE_MAX_DEFAULT). */
#define PAGE_LIMIT_DEFAULT 100u
#define PAGE_MAX_DEFAULT 1000u
#define HISTORY_LIMIT_DEFAULT 100u

/* Labels users attach to a device ([a-z0-9][a-z0-9._-]{0,31}): at most
 * this many per device; rollout filters select by them. */
#define DEVICE_LABELS_MAX 16u
#define DEVICE_LABEL_MAX 32u

/* Rollouts kept at once (unfinished ones are never removed; finished
 * ones beyond this go, oldest first), and members of one rollout. */
#define ROLLOUTS_MAX 256u
#define ROLLOUT_MEMBERS_MAX 10000u

/* The boards an image declares (daemon/image-boards.h): at most this
 * many, each a board name as a device's OS info reports it, at most
 * IMAGE_BOARD_NAME_MAX bytes (the OS info field's limit). */
#define IMAGE_BOARDS_MAX 16u
#define IMAGE_BOARD_NAME_MAX 64u
