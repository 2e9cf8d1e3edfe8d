/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwctl internals shared by main (smpgwctl.c) and the commands
 * (cmd-*.c).  A command is a group and a verb ("image info"), a run
 * function and one line of help; adding one is a row in the table in
 * smpgwctl.c and a cmd_<group>_<verb>() here.
 */
#pragma once

#include <stdbool.h>

/* Exit codes, the same for every command. */
enum {
        CTL_EXIT_OK = 0,
        CTL_EXIT_FAILURE = 1,        /* could not do it: unreadable file, no memory, ... */
        CTL_EXIT_USAGE = 2,          /* bad command line */
        CTL_EXIT_BAD_IMAGE = 3,      /* not a well-formed MCUboot image */
        CTL_EXIT_BAD_HASH = 4,       /* hash TLV missing, duplicated, or wrong */
        CTL_EXIT_BAD_SIGNATURE = 5,  /* keys given, but no signature valid with them */
};

/* Global options, parsed before the command name. */
struct ctl_context {
        bool json;  /* machine-readable output on stdout */
};

/* Runs a command: argv[0] is "smpgwctl <group> <verb>", the command's own
 * arguments follow.  Returns an exit code (CTL_EXIT_*). */
typedef int (*ctl_run_t)(struct ctl_context *ctx, int argc, char *argv[]);

int cmd_image_info(struct ctl_context *ctx, int argc, char *argv[]);
