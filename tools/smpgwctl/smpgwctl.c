/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwctl: command line tool for smpgw.
 *
 *   smpgwctl [GLOBAL OPTIONS] GROUP VERB [ARGS]
 *
 * Global options come before the command; getopt stops at the first
 * non-option ("+"), so each command parses its own options.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "smpgwctl.h"
#include "util.h"

struct ctl_command {
        const char *group;
        const char *verb;
        const char *args;     /* synopsis after "group verb" */
        const char *summary;
        ctl_run_t run;
};

static const struct ctl_command commands[] = {
        { "image", "info", "FILE [--key KEY]...", "Show and check an MCUboot image file",
          cmd_image_info },
};

static void help(FILE *f) {
        fprintf(f,
                "Usage: smpgwctl [OPTIONS] COMMAND [ARGS]\n"
                "\n"
                "Talks to MCUboot/SMP devices and works with their firmware images.\n"
                "\n"
                "Options:\n"
                "  -j, --json      print machine-readable JSON on stdout\n"
                "  -h, --help      show this help\n"
                "      --version   show the version\n"
                "\n"
                "Commands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                char name[64];
                snprintf(name, sizeof(name), "%s %s %s", commands[i].group, commands[i].verb,
                         commands[i].args);
                fprintf(f, "  %-34s %s\n", name, commands[i].summary);
        }
        fprintf(f,
                "\n"
                "'smpgwctl COMMAND --help' describes a command and its exit codes.\n"
                "Exit codes: 0 success, 1 failure, 2 usage error; commands add their own.\n");
}

static const struct ctl_command *command_find(const char *group, const char *verb) {
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(commands[i].group, group) && verb && streq(commands[i].verb, verb))
                        return &commands[i];
        return NULL;
}

static bool group_exists(const char *group) {
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(commands[i].group, group))
                        return true;
        return false;
}

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100 };
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        struct ctl_context ctx = {};
        int c;

        while ((c = getopt_long(argc, argv, "+jh", options, NULL)) >= 0)
                switch (c) {
                case 'j':
                        ctx.json = true;
                        break;
                case 'h':
                        help(stdout);
                        return CTL_EXIT_OK;
                case ARG_VERSION:
                        printf("smpgwctl %s\n", PACKAGE_VERSION);
                        return CTL_EXIT_OK;
                default:
                        return CTL_EXIT_USAGE;
                }

        if (optind >= argc) {
                help(stderr);
                return CTL_EXIT_USAGE;
        }
        const char *group = argv[optind];
        const char *verb = optind + 1 < argc ? argv[optind + 1] : NULL;
        const struct ctl_command *cmd = command_find(group, verb);
        if (!cmd) {
                if (group_exists(group))
                        fprintf(stderr, "smpgwctl: '%s' needs a known subcommand; see 'smpgwctl --help'\n",
                                group);
                else
                        fprintf(stderr, "smpgwctl: unknown command '%s'; see 'smpgwctl --help'\n", group);
                return CTL_EXIT_USAGE;
        }

        /* The command sees argv[0] = "smpgwctl group verb", so getopt's
         * messages name it, and its arguments after that. */
        char name[64];
        snprintf(name, sizeof(name), "smpgwctl %s %s", cmd->group, cmd->verb);
        int sub_argc = argc - optind - 1;
        char **sub_argv = argv + optind + 1;
        sub_argv[0] = name;
        optind = 0; /* GNU getopt: start over for the command's options */
        return cmd->run(&ctx, sub_argc, sub_argv);
}
