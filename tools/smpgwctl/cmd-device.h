/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Argument parsing and upload reporting shared by cmd-device.c and
 * cmd-update.c.
 */
#pragma once

#include <getopt.h>
#include <stdio.h>

#include "ctl-session.h"

/* What a device command takes, for parsing and --help. */
struct cmd_spec {
        const char *usage;          /* after "smpgwctl --conn URI [OPTIONS] " */
        const char *description;
        const char *options_help;   /* the command's own options, or NULL */
        unsigned min_args, max_args;
};

/* A command's own option: 0, or negative for a usage error. */
typedef int (*cmd_option_fn)(int c, const char *arg, void *userdata);

/* cmd_parse() result when --help was shown: the command exits 0. */
#define CMD_HELP_SHOWN (-1)

void cmd_help(FILE *f, const struct cmd_spec *spec);

/* Parses the global options, -h and the command's own (extra, with
 * extra_short, handled by fn), then checks the number of arguments.
 * Returns CTL_EXIT_OK with the arguments in *ret_args and *ret_n,
 * CMD_HELP_SHOWN, or CTL_EXIT_USAGE. */
int cmd_parse(struct ctl_context *ctx, const struct cmd_spec *spec, int argc, char *argv[],
              const struct option *extra, const char *extra_short, cmd_option_fn fn, void *userdata,
              char ***ret_args, int *ret_n);

/* Reports a failed upload and returns its exit code. */
int cmd_upload_failed(const struct ctl_context *ctx, const char *what, int error,
                      const struct ctl_saved_status *status, uint64_t offset, uint64_t total);
/* The sentence after "the device refused: STATUS" when it refused because
 * it runs `testing` under test (smp_update_refused_under_test()): what
 * keeps that image, what goes back, and then `again` ("update again"). */
struct smp_update_slot;
void cmd_under_test_advice(const struct smp_update_slot *testing, const char *again, char *buf, size_t size);
/* Two lines of upload figures, and the path MTU learned. */
void cmd_print_upload_result(const struct smp_upload_result *r, size_t total, const char *indent);

/* --path-mtu N of image upload and update: bytes, 1 to 65535. */
#define CMD_PATH_MTU_HELP \
        "      --path-mtu N      start from N-byte packets, a path_mtu an earlier\n" \
        "                        upload to this device learned (UDP; still checked)\n"
int cmd_path_mtu_option(const char *arg, size_t *ret);
/* The JSON "path_mtu" of an upload: bytes, or null when not searched. */
json_t *cmd_json_path_mtu(const struct smp_upload_result *r);
