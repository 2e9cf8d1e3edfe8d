/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shell management group (9): run a shell command on the device and get
 * what it printed, in both directions, plus a convenience that runs one
 * command on a session.  Conventions (writers, ownership, errors,
 * -EREMOTEIO for reported failures): see smp-os.h.
 *
 * Shapes from Zephyr smp_group_9.rst and
 * subsys/mgmt/mcumgr/grp/shell_mgmt/src/shell_mgmt.c:
 *
 *   exec (id 0, op write): {"argv": [text, ...]} -> {"o": text, "ret": int}
 *
 * The device joins argv with single spaces into a buffer of
 * CONFIG_SHELL_CMD_BUFF_SIZE + 1 bytes and refuses, before running
 * anything, a line whose length reaches CONFIG_SHELL_CMD_BUFF_SIZE (the
 * test is `len + strlen(arg) >= CONFIG_SHELL_CMD_BUFF_SIZE` for each
 * argument in turn): the longest line it runs is CONFIG_SHELL_CMD_BUFF_SIZE
 * - 1 characters.  The refusal is the group error SHELL_COMMAND_TOO_LONG
 * (v2 {"err": {"group": 9, "rc": 2}}; to a v1 request the legacy EINVAL),
 * an empty argv SHELL_EMPTY_COMMAND.
 *
 * "ret" is the shell command's own return value (0, or a negative errno
 * such as -EINVAL, -EBUSY, -ENOSPC).  Builds with
 * CONFIG_MCUMGR_GRP_SHELL_LEGACY_RC_RETURN_CODE put it in "rc" instead,
 * where a naive client takes it for an SMP error: the decoder below reads
 * "rc" as the command's result whenever "o" is present, and says so
 * (legacy_rc).
 *
 * The output "o" is what the command printed through Zephyr's dummy shell
 * backend: lines end in "\r\n" (SHELL_FLAG_OLF_CRLF), and output beyond
 * CONFIG_SHELL_BACKEND_DUMMY_BUF_SIZE - 1 bytes (300 by default, 1000 in
 * nRF Connect SDK's mesh distributor sample) is silently cut off.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <smpgw/smp-cbor.h>
#include <smpgw/smp-error.h>
#include <smpgw/smp-session.h>

#ifdef __cplusplus
extern "C" {
#endif

enum smp_shell_cmd {
        SMP_SHELL_CMD_EXEC = 0,
};

/* CONFIG_SHELL_CMD_BUFF_SIZE's default: the device runs lines of at most
 * 255 characters. */
#define SMP_SHELL_CMD_BUFF_SIZE_DEFAULT 256u
/* Arguments a request may carry (encode and decode).  Zephyr's shell
 * splits the joined line again and stops at CONFIG_SHELL_ARGC_MAX (20 by
 * default); the bound here only keeps decoding finite. */
#define SMP_SHELL_ARGV_MAX 64u

/* Exec request: argv[0..argc) as text strings.  -EINVAL for argc 0 or
 * above SMP_SHELL_ARGV_MAX, or an absent slice. */
int smp_shell_exec_req_encode(struct smp_cbor_writer *w, const struct smp_cbor_slice *argv, size_t argc);

struct smp_shell_exec_req {
        struct smp_cbor_slice *argv;   /* owned after decode; see _done() */
        size_t argc;
};

/* Missing "argv" is -ENOENT; an element that is not text -EBADMSG; more
 * than SMP_SHELL_ARGV_MAX elements -E2BIG.  An empty array decodes (the
 * server answers SHELL_EMPTY_COMMAND). */
int smp_shell_exec_req_decode(const uint8_t *body, size_t len, struct smp_shell_exec_req *ret,
                              struct smp_cbor_error *error);
void smp_shell_exec_req_done(struct smp_shell_exec_req *req);

/* Length of the line the device composes: the arguments joined with one
 * space (no terminator counted). */
size_t smp_shell_line_len(const struct smp_cbor_slice *argv, size_t argc);

/* Whether a line of line_len characters fits a device shell buffer of
 * cmd_buf_size (CONFIG_SHELL_CMD_BUFF_SIZE; 0 means the default): true
 * iff line_len < cmd_buf_size. */
bool smp_shell_line_fits(size_t line_len, size_t cmd_buf_size);

struct smp_shell_exec_rsp {
        struct smp_cbor_slice output;  /* "o"; borrows the body */
        int64_t ret;                   /* "ret", or the legacy "rc"; 0 when neither */
        bool has_ret;                  /* one of them was present */
        bool legacy_rc;                /* encode: write "rc"; decode: it came as "rc" */
};

int smp_shell_exec_rsp_encode(struct smp_cbor_writer *w, const struct smp_shell_exec_rsp *rsp);
/* -EREMOTEIO when the answer is an SMP or group error (a v2 "err", or an
 * "rc" != 0 without "o"); -ENOENT when "o" is missing from an answer that
 * reports no error. */
int smp_shell_exec_rsp_decode(const uint8_t *body, size_t len, struct smp_shell_exec_rsp *ret,
                              struct smp_cbor_error *error);

/* Splits a command line at spaces and tabs (no quoting: the commands
 * smpgw sends never need it) into a NULL-terminated array, freed with
 * smp_strv_free().  -EINVAL for a line with no word; -E2BIG above
 * SMP_SHELL_ARGV_MAX words. */
int smp_shell_split(const char *line, char ***ret_argv, size_t *ret_argc);

/* ------------------------------------------------------------------ */
/* Running one command on a session                                   */

struct smp_shell_exec;

struct smp_shell_result {
        /* 0: the command ran, output and ret are set.  Otherwise a
         * negative errno: the session's (-ETIMEDOUT, -ECONNRESET,
         * -EMSGSIZE), -EREMOTEIO with status set (the device refused the
         * request: SHELL_COMMAND_TOO_LONG, ENOTSUP when shell management
         * is not built in, ...), or a decode error. */
        int error;
        struct smp_status status;
        const char *output;            /* NUL-terminated copy of "o"; valid
                                        * during the callback only */
        size_t output_len;             /* bytes of "o" (a NUL inside stays) */
        int64_t ret;                   /* the command's return value */
        bool legacy_rc;
};

typedef void (*smp_shell_done_fn)(struct smp_shell_exec *x, const struct smp_shell_result *result,
                                  void *userdata);

struct smp_shell_exec_params {
        /* The device's CONFIG_SHELL_CMD_BUFF_SIZE; 0: the default (256).
         * A longer line is refused before anything is sent. */
        size_t cmd_buf_size;
        /* Per transmission; 0: the session's. */
        uint64_t timeout_usec;
        /* The command only reads (dfd get, receivers-get, ...): it is
         * retransmitted on timeout like other reads.  Leave false for
         * commands that change state. */
        bool idempotent;
};

/* Sends argv[0..argc) as one exec request; done runs exactly once unless
 * the call is cancelled.  params may be NULL (defaults).
 * Returns 0, -E2BIG when the joined line does not fit the shell buffer
 * (nothing sent), -EINVAL (no arguments, too many), or the session's
 * send errors.  Cancel a call (smp_shell_exec_cancel()) before freeing its
 * session, as with the other procedures on a session. */
int smp_shell_exec_start(struct smp_session *s, const char *const *argv, size_t argc,
                         const struct smp_shell_exec_params *params, smp_shell_done_fn done, void *userdata,
                         struct smp_shell_exec **ret);
/* The same with a command line split by smp_shell_split(). */
int smp_shell_exec_line(struct smp_session *s, const char *line, const struct smp_shell_exec_params *params,
                        smp_shell_done_fn done, void *userdata, struct smp_shell_exec **ret);
/* Forgets a call: its callback will not run.  NULL is fine; so is a call
 * whose callback is running (the call is freed when it returns). */
void smp_shell_exec_cancel(struct smp_shell_exec *x);
struct smp_session *smp_shell_exec_get_session(const struct smp_shell_exec *x);

#ifdef __cplusplus
}
#endif
