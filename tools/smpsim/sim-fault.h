/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Faults a simulated device can be told to show, from the command line
 * (--fault [dev=N:]SPEC, repeatable) or at run time over the control
 * socket.  Offsets count image bytes of the upload in progress.
 *
 *   revert            the new image boots but never confirms itself and
 *                     crashes, so MCUboot reverts at the next boot
 *   reject            MCUboot finds the new image invalid at boot and
 *                     erases it; the old image keeps running
 *   drop-at=BYTES[,MS]  when the upload reaches BYTES the link goes down
 *                     for MS milliseconds (default 2000), once
 *   silent-at=BYTES   from BYTES on the device answers nothing until it
 *                     is reset from the control socket (a hung device)
 *   reboot-at=BYTES[,keep]  the device reboots when the upload reaches
 *                     BYTES; the partial image is erased unless ",keep"
 *   drop=P            each request is lost with probability P
 *   silent=P          with probability P per request the device hangs
 *   slow=MS           every answer is delayed by MS more
 *   dup=P             an answer is sent twice with probability P
 *   corrupt=P         an answer has one byte changed with probability P
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct sim_faults {
        bool revert;
        bool reject;
        bool reset_busy;     /* the application's reset hook declines unless forced */
        int64_t drop_at;     /* -1: off */
        uint32_t drop_ms;
        bool drop_fired;
        int64_t silent_at;   /* -1: off */
        int64_t reboot_at;   /* -1: off */
        bool reboot_keep;
        bool reboot_fired;
        int64_t lose_answer_at; /* -1: off */
        bool lose_answer_fired;
        double drop_p;
        double silent_p;
        uint32_t slow_ms;
        double dup_p;
        double corrupt_p;
};

void sim_faults_init(struct sim_faults *f);

/* Parses "[dev=N:]SPEC".  *ret_dev is the device index, or -1 for all.
 * Applies the fault to *f (which the caller picks by ret_dev: call with a
 * scratch struct first to learn the device).  Returns 0 or -EINVAL, with
 * a message for the user in *ret_error (static string). */
int sim_fault_parse(const char *spec, long *ret_dev, const char **ret_error);
int sim_fault_apply(const char *spec, struct sim_faults *f, const char **ret_error);

/* Writes a one-line description of the active faults ("none" when none). */
void sim_faults_describe(const struct sim_faults *f, char *buf, size_t size);
