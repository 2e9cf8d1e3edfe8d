/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * smpgwctl's daemon mode: commands that ask smpgwd over D-Bus (org.smpgw,
 * dbus/org.smpgw.xml) instead of talking to a device themselves.
 */
#pragma once

#include "smpgwctl.h"

/* Exit codes of daemon mode beyond smpgwctl.h's (doc/smpgwctl.md);
 * "daemon not reachable" is CTL_EXIT_TRANSPORT (6). */
enum {
        CTL_EXIT_REFUSED = 10,       /* the daemon refused: no such object, busy, bad argument, access denied */
        CTL_EXIT_JOB_FAILED = 11,    /* push --wait, watch: a job failed or was cancelled */
};

int cmd_devices(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_device_show(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_images(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_images_add(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_push(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_jobs(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_distributions(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_distribution_show(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_watch(struct ctl_context *ctx, int argc, char *argv[]);

/* cmd-daemon-change.c */
int cmd_devices_add(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_rename(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_direct_device(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_probe(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_forget(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_images_delete(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_images_set_boards(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_images_set_mesh_composition(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_cancel(struct ctl_context *ctx, int argc, char *argv[]);

/* cmd-rollout.c */
int cmd_rollout_create(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_rollout_list(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_rollout_show(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_rollout_pause(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_rollout_resume(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_rollout_cancel(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_rollout_activate(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_rollout_plan(struct ctl_context *ctx, int argc, char *argv[]);
/* device ID labels [--set|--add|--remove] (argv[1] the device, argv[2] "labels") */
int cmd_device_labels(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_activate(struct ctl_context *ctx, int argc, char *argv[]);
