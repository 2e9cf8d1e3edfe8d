/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a device's OS info answer says of its board and its application.
 *
 * The probe asks Zephyr's OS/application info command (SMP group 0,
 * command 7) for format "a" and keeps the answer as the device's os_info
 * (no column of its own: the board and the application are read from it
 * whenever they are needed).  Zephyr's os_mgmt writes the fields in this
 * order, each after one space:
 *
 *   kernel name ("Zephyr"), node name (a host or Bluetooth name: may hold
 *   spaces), kernel release, kernel version, build date and time (only
 *   with CONFIG_MCUMGR_GRP_OS_INFO_BUILD_DATE_TIME: __TIMESTAMP__, five
 *   words), machine (CONFIG_ARCH), processor, hardware platform
 *   (CONFIG_BOARD, "@revision" when the board has one), operating system
 *   ("Zephyr", or the application's own name when it sets custom_os_name
 *   in the MGMT_EVT_OP_OS_MGMT_INFO_CHECK hook), then whatever custom
 *   hooks append.
 *
 * So the fields before the machine cannot be split by spaces alone; the
 * machine is the anchor: one of Zephyr's architecture names, right after
 * a version or a time or a year.  The board is the word two after it,
 * the application the rest of the line.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define OS_INFO_FIELD_SIZE 65u /* a board or an application name: 64 bytes and its NUL */

struct os_info_fields {
        char board[OS_INFO_FIELD_SIZE]; /* "": unknown */
        char app[OS_INFO_FIELD_SIZE];   /* "": unknown */
};

/* The board and the application in an "a" answer.  Either is "" when the
 * answer does not have it (not Zephyr's layout, NULL, too long for the
 * field); returns 0 when the board is known, -ENODATA otherwise. */
int os_info_parse(const char *os_info, struct os_info_fields *ret);

/* Where os_info_parse() finds them: offsets into the answer and lengths,
 * a length of 0 where it gives "".  A device keeps these with its answer
 * (device_set_os_info()) so that device pages do not parse it again. */
struct os_info_spans {
        uint16_t board_offset, board_len;
        uint16_t app_offset, app_len;
};
void os_info_locate(const char *os_info, struct os_info_spans *ret);
