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
int cmd_watch(struct ctl_context *ctx, int argc, char *argv[]);

/* cmd-daemon-change.c */
int cmd_devices_add(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_rename(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_probe(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_forget(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_images_delete(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_cancel(struct ctl_context *ctx, int argc, char *argv[]);
int cmd_activate(struct ctl_context *ctx, int argc, char *argv[]);
