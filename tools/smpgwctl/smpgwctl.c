/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwctl: command line tool for smpgw.
 *
 *   smpgwctl [GLOBAL OPTIONS] GROUP [VERB] [ARGS]
 *
 * Global options come before the command; getopt stops at the first
 * non-option ("+"), so each command parses its own options (device
 * commands accept the global ones again, after the command).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd-daemon.h"
#include "config.h"
#include "ctl-session.h"
#include "smpgwctl.h"
#include "util.h"

struct ctl_command {
        const char *group;
        const char *verb;     /* NULL: a command of one word ("echo") */
        const char *args;     /* synopsis after "group verb" */
        const char *summary;
        ctl_run_t run;
};

static const struct ctl_command commands[] = {
        { "image", "info", "FILE [--key KEY]...", "Show and check an MCUboot image file", cmd_image_info },
        /* direct device sessions: --conn URI */
        { "echo", NULL, "TEXT", "Echo TEXT through the device", cmd_echo },
        { "params", NULL, "", "Show the device's SMP buffer size and count", cmd_params },
        { "info", NULL, "[--format F]", "Show OS/application and bootloader info", cmd_info },
        { "image", "list", "", "List the images in the device's slots", cmd_image_list },
        { "image", "upload", "FILE", "Upload an image to the secondary slot (resumes)", cmd_image_upload },
        { "image", "test", "HASH", "Mark an image for a test boot", cmd_image_test },
        { "image", "confirm", "[HASH]", "Confirm the running image, or HASH permanently", cmd_image_confirm },
        { "image", "erase", "[--slot N]", "Erase the secondary slot", cmd_image_erase },
        { "reset", NULL, "[--force]", "Reboot the device", cmd_reset },
        { "stat", "list", "", "List statistics groups", cmd_stat_list },
        { "stat", "read", "NAME", "Show one statistics group", cmd_stat_read },
        { "update", NULL, "FILE [--mode M]", "Update the device: upload, test, reset, confirm", cmd_update },
        /* no device: discovery */
        { "scan", NULL, "[--seconds N]", "List SMP devices nearby (BLE discovery)", cmd_scan },
        /* daemon mode: smpgwd over D-Bus (--bus after the command) */
        /* (a group's verbs before the group's own command: the first match wins) */
        { "devices", "add", "CONN...", "Add devices to smpgwd; prints their ids", cmd_devices_add },
        { "devices", NULL, "", "List the devices smpgwd knows", cmd_devices },
        { "device", NULL, "ID|CONN [labels [...]]", "Show one device smpgwd knows, with its slots; or its labels",
          cmd_device_show },
        { "rename", NULL, "DEVICE NAME", "Name a device (\"\": back to its default name)", cmd_rename },
        { "direct-device", NULL, "TARGET DEVICE|none", "Name the device that reaches a mesh target directly",
          cmd_direct_device },
        { "probe", NULL, "DEVICE...", "Have smpgwd read devices again now", cmd_probe },
        { "forget", NULL, "DEVICE...", "Have smpgwd forget devices and their history", cmd_forget },
        { "images", "add", "FILE", "Store an image file in smpgwd; prints its id", cmd_images_add },
        { "images", "delete", "IMAGE...", "Remove stored images from smpgwd", cmd_images_delete },
        { "images", "set-boards", "IMAGE [BOARD...]", "Declare the boards a stored image is built for",
          cmd_images_set_boards },
        { "images", "set-mesh-composition", "IMAGE [HASH ELEMENTS]",
          "Declare the Bluetooth Mesh composition of a stored image's firmware", cmd_images_set_mesh_composition },
        { "images", NULL, "", "List the images stored in smpgwd", cmd_images },
        { "push", NULL, "IMAGE DEVICE... [--wait]", "Have smpgwd update devices; prints job ids", cmd_push },
        { "jobs", NULL, "", "List smpgwd's jobs, newest first", cmd_jobs },
        { "distributions", NULL, "", "List smpgwd's Bluetooth Mesh distributions", cmd_distributions },
        { "distribution", NULL, "ID", "Show one distribution and its targets", cmd_distribution_show },
        { "watch", NULL, "[JOB...] [--follow]", "Follow smpgwd's jobs live", cmd_watch },
        { "cancel", NULL, "JOB...", "Cancel smpgwd's jobs", cmd_cancel },
        { "rollout", "create", "IMAGE --devices|--filter ...", "Push an image in waves (a rollout)",
          cmd_rollout_create },
        { "rollout", "list", "", "List smpgwd's rollouts", cmd_rollout_list },
        { "rollout", "show", "ID", "Show one rollout", cmd_rollout_show },
        { "rollout", "pause", "ID", "Pause a rollout: no new member starts", cmd_rollout_pause },
        { "rollout", "resume", "ID", "Resume a paused rollout", cmd_rollout_resume },
        { "rollout", "cancel", "ID", "Cancel a rollout (nothing left half activated)", cmd_rollout_cancel },
        { "rollout", "activate", "ID", "Activate now, without waiting for a window", cmd_rollout_activate },
        { "rollout", "plan", "ID | IMAGE options", "A dry run: waves, skipped devices, ETA", cmd_rollout_plan },
        { "activate", NULL, "JOB...", "Activate smpgwd's staged jobs", cmd_activate },
};

static void command_line(FILE *f, const struct ctl_command *c) {
        char name[64];
        snprintf(name, sizeof(name), "%s%s%s %s", c->group, c->verb ? " " : "", c->verb ?: "", c->args);
        fprintf(f, "  %-34s %s\n", name, c->summary);
}

/* "smpgwctl image --help": the group's commands. */
static void group_help(FILE *f, const char *group) {
        fprintf(f, "Usage: smpgwctl [OPTIONS] %s COMMAND [ARGS]\n\nCommands:\n", group);
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(commands[i].group, group))
                        command_line(f, &commands[i]);
        fprintf(f, "\n'smpgwctl %s COMMAND --help' describes one; 'smpgwctl --help' lists every command\n"
                   "and the options.\n", group);
}

static bool is_help(const char *arg) {
        return arg && (streq(arg, "--help") || streq(arg, "-h"));
}

static void help(FILE *f) {
        fprintf(f,
                "Usage: smpgwctl [OPTIONS] COMMAND [ARGS]\n"
                "\n"
                "Talks to MCUboot/SMP devices and works with their firmware images.\n"
                "\n"
                "Options:\n"
                "  -h, --help            show this help\n"
                "      --version         show the version\n"
                "\n");
        ctl_global_options_help(f);
        fprintf(f, "\nCommands (from 'echo' to 'update': the device given with --conn; from 'devices' on:\n"
                   "smpgwd over D-Bus, the system bus unless --bus session|ADDRESS follows the command):\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                command_line(f, &commands[i]);
        fprintf(f, "\n");
        ctl_exit_codes_help(f);
        fprintf(f, "  ('image info' also: 5  keys given, but no signature is valid with them)\n"
                   "  (daemon mode also: 6  smpgwd not reachable; 10 smpgwd refused the request;\n"
                   "   11 a job failed or was cancelled)\n"
                   "\n"
                   "'smpgwctl COMMAND --help' describes a command.\n");
}

static const struct ctl_command *command_find(const char *group, const char *verb) {
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(commands[i].group, group) &&
                    (!commands[i].verb || (verb && streq(commands[i].verb, verb))))
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
                CTL_GLOBAL_OPTIONS,
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        struct ctl_context ctx = {};
        int c, r;

        while ((c = getopt_long(argc, argv, "+" CTL_GLOBAL_SHORTOPTS "h", options, NULL)) >= 0) {
                r = ctl_global_option(&ctx, c, optarg);
                if (r < 0)
                        return CTL_EXIT_USAGE;
                if (r > 0)
                        continue;
                switch (c) {
                case 'h':
                        help(stdout);
                        return CTL_EXIT_OK;
                case ARG_VERSION:
                        printf("smpgwctl %s\n", PACKAGE_VERSION);
                        return CTL_EXIT_OK;
                default:
                        return CTL_EXIT_USAGE;
                }
        }

        if (optind >= argc) {
                help(stderr);
                return CTL_EXIT_USAGE;
        }
        const char *group = argv[optind];
        const char *verb = optind + 1 < argc ? argv[optind + 1] : NULL;
        const struct ctl_command *cmd = command_find(group, verb);
        if (!cmd) {
                if (group_exists(group) && is_help(verb)) {
                        group_help(stdout, group);
                        return CTL_EXIT_OK;
                }
                if (group_exists(group)) {
                        if (verb)
                                fprintf(stderr, "smpgwctl: '%s %s' is not a command.\n\n", group, verb);
                        else
                                fprintf(stderr, "smpgwctl: '%s' needs a command.\n\n", group);
                        group_help(stderr, group);
                } else
                        fprintf(stderr, "smpgwctl: unknown command '%s'; see 'smpgwctl --help'\n", group);
                return CTL_EXIT_USAGE;
        }

        /* The command sees argv[0] = "smpgwctl group [verb]", so getopt's
         * messages name it, and its arguments after that. */
        char name[64], command[48];
        snprintf(command, sizeof(command), "%s%s%s", cmd->group, cmd->verb ? " " : "", cmd->verb ?: "");
        snprintf(name, sizeof(name), "smpgwctl %s", command);
        ctx.command = command;
        int skip = cmd->verb ? 1 : 0;
        int sub_argc = argc - optind - skip;
        char **sub_argv = argv + optind + skip;
        sub_argv[0] = name;
        optind = 0; /* GNU getopt: start over for the command's options */
        return cmd->run(&ctx, sub_argc, sub_argv);
}
