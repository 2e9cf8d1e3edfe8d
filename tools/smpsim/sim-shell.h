/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SMP shell management (group 9) on a simulated device, as Zephyr's
 * grp/shell_mgmt/src/shell_mgmt.c runs it: argv joined with spaces into a
 * CONFIG_SHELL_CMD_BUFF_SIZE buffer (a line reaching the size is refused
 * with SHELL_COMMAND_TOO_LONG before anything runs, an empty argv with
 * SHELL_EMPTY_COMMAND), the line run on the dummy shell backend, whose
 * output buffer of CONFIG_SHELL_BACKEND_DUMMY_BUF_SIZE keeps the first
 * size - 1 bytes and drops the rest, lines ending in "\r\n"
 * (SHELL_FLAG_OLF_CRLF).  Only a Distributor (sim-mesh.h) has shell
 * management; any other device answers ENOTSUP, as a build without
 * CONFIG_MCUMGR_GRP_SHELL does.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sim_device;

/* What the group handler answers: an SMP error, a group error, or the
 * printed text and the command's return value. */
struct sim_shell_answer {
        int mgmt_rc;       /* > 0: {"rc": mgmt_rc} (MGMT_ERR_*) */
        int group_rc;      /* > 0: the group error (enum smp_shell_err) */
        char *out;         /* owned; out_len bytes */
        size_t out_len;
        int ret;
        bool legacy_rc;    /* answer "rc" instead of "ret" */
};

void sim_shell_exec(struct sim_device *d, const uint8_t *body, size_t len, struct sim_shell_answer *ret);
void sim_shell_answer_done(struct sim_shell_answer *a);

/* The dummy backend's buffer: cap bytes, of which cap - 1 are kept. */
struct sim_shell_out {
        char *buf;
        size_t cap;
        size_t len;
};

/* Appends like shell_fprintf() on the dummy backend: "\n" becomes
 * "\r\n", whatever passes the buffer is lost. */
void sim_shell_printf(struct sim_shell_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
