/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwctl internals shared by main (smpgwctl.c) and the commands
 * (cmd-*.c).  A command is a group and a verb ("image info"), or a group
 * alone ("echo"), a run function and one line of help; adding one is a
 * row in the table in smpgwctl.c and a cmd_<name>() here.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit codes, the same for every command (documented in --help and
 * doc/smpgwctl.md; external scripts depend on them). */
enum {
        CTL_EXIT_OK = 0,
        CTL_EXIT_FAILURE = 1,        /* could not do it: unreadable file, no memory, ... */
        CTL_EXIT_USAGE = 2,          /* bad command line */
        CTL_EXIT_BAD_IMAGE = 3,      /* not a well-formed MCUboot image */
        CTL_EXIT_BAD_HASH = 4,       /* hash TLV missing, duplicated, or wrong */
        CTL_EXIT_BAD_SIGNATURE = 5,  /* keys given, but no signature valid with them */
        CTL_EXIT_TRANSPORT = 6,      /* no link, no answer, link lost, garbled answers */
        CTL_EXIT_DEVICE = 7,         /* the device answered with an SMP error */
        CTL_EXIT_REVERTED = 8,       /* update: MCUboot went back to the old image */
        CTL_EXIT_STUCK = 9,          /* update: the device is in no state a step leaves */
};

/* Global options, parsed before the command name (and, for commands that
 * talk to a device, after it as well). */
struct ctl_context {
        bool json;              /* machine-readable output on stdout */
        const char *conn;       /* --conn URI */
        unsigned window;        /* --window: upload chunks in flight, 0: device's buf_count - 1 */
        size_t chunk;           /* --chunk: data bytes per upload chunk at most, 0: as fit */
        uint64_t timeout_usec;  /* --timeout, 0: the library's defaults */
        uint64_t erase_timeout_usec; /* --erase-timeout, 0: the defaults */
        uint8_t smp_version;    /* --smp-version: 0 (default: 2, falls back), 1 or 2 */
        unsigned verbose;       /* -v */
        const char *command;    /* "image upload", for messages and JSON */
};

/* Runs a command: argv[0] is "smpgwctl <group> [<verb>]", the command's
 * own arguments follow.  Returns an exit code (CTL_EXIT_*). */
typedef int (*ctl_run_t)(struct ctl_context *ctx, int argc, char *argv[]);

int cmd_image_info(struct ctl_context *ctx, int argc, char *argv[]);

/* cmd-device.c: direct device sessions (--conn URI). */
int cmd_echo(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_params(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_info(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_reset(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_image_list(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_image_upload(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_image_test(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_image_confirm(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_image_erase(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_stat_list(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_stat_read(struct ctl_context *ctx, int argc, char *argv[]);

/* cmd-update.c */
int cmd_update(struct ctl_context *ctx, int argc, char *argv[]);

/* cmd-scan.c: discovery through a transport plugin (default ble). */
int cmd_scan(struct ctl_context *ctx, int argc, char *argv[]);
