/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim-device.h"
#include "sim-mesh.h"
#include "sim-shell.h"
#include "smpgw/smp-error.h"
#include "smpgw/smp-shell.h"
#include "util.h"

/* CONFIG_SHELL_ARGC_MAX's default. */
#define SHELL_ARGC_MAX 20

void sim_shell_printf(struct sim_shell_out *o, const char *fmt, ...) {
        char text[1024];
        va_list ap;

        va_start(ap, fmt);
        int n = vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        for (size_t i = 0; i < MIN((size_t) n, sizeof(text) - 1); i++) {
                const char *piece = text[i] == '\n' ? "\r\n" : &text[i];
                size_t k = text[i] == '\n' ? 2 : 1;
                for (size_t j = 0; j < k; j++)
                        if (o->len + 1 < o->cap)
                                o->buf[o->len++] = piece[j];
        }
}

void sim_shell_answer_done(struct sim_shell_answer *a) {
        free(a->out);
        *a = (struct sim_shell_answer) { 0 };
}

/* The shell's own split of the line into words (shell_make_argv(),
 * without its quoting). */
static int split(char *line, char **argv) {
        int argc = 0;
        for (char *tok = strtok(line, " \t"); tok; tok = strtok(NULL, " \t")) {
                if (argc == SHELL_ARGC_MAX)
                        return -E2BIG;
                argv[argc++] = tok;
        }
        return argc;
}

void sim_shell_exec(struct sim_device *d, const uint8_t *body, size_t len, struct sim_shell_answer *ret) {
        struct sim_mesh *m = d->mesh;
        struct smp_shell_exec_req req;

        *ret = (struct sim_shell_answer) { 0 };
        if (!m || !sim_mesh_active(m)) {
                ret->mgmt_rc = SMP_MGMT_ERR_ENOTSUP;
                return;
        }
        const struct sim_mesh_config *cfg = sim_mesh_get_config(m);

        if (smp_shell_exec_req_decode(body, len, &req, NULL) < 0) {
                ret->mgmt_rc = SMP_MGMT_ERR_EINVAL;
                return;
        }
        /* shell_mgmt_exec(): the line in a CONFIG_SHELL_CMD_BUFF_SIZE + 1
         * buffer, refused as soon as it reaches the buffer size */
        _cleanup_free_ char *line = malloc(cfg->shell_buf + 1);
        if (!line) {
                smp_shell_exec_req_done(&req);
                ret->mgmt_rc = SMP_MGMT_ERR_ENOMEM;
                return;
        }
        size_t n = 0;
        for (size_t i = 0; i < req.argc; i++) {
                if (n + req.argv[i].len >= cfg->shell_buf) {
                        smp_shell_exec_req_done(&req);
                        ret->group_rc = SMP_SHELL_ERR_COMMAND_TOO_LONG;
                        return;
                }
                memcpy(line + n, req.argv[i].ptr, req.argv[i].len);
                n += req.argv[i].len + 1;
                line[n - 1] = ' ';
        }
        smp_shell_exec_req_done(&req);
        if (n == 0) {
                ret->group_rc = SMP_SHELL_ERR_EMPTY_COMMAND;
                return;
        }
        line[n - 1] = 0;
        /* a NUL inside an argument ends the line, as in C */

        struct sim_shell_out out = { .cap = cfg->shell_out };
        out.buf = malloc(out.cap);
        if (!out.buf) {
                ret->mgmt_rc = SMP_MGMT_ERR_ENOMEM;
                return;
        }
        dev_log(d, 2, "shell: '%s'", line);
        char *argv[SHELL_ARGC_MAX];
        int argc = split(line, argv);
        if (argc == -E2BIG) {
                sim_shell_printf(&out, "%s\n", "Too many parameters (max 20)");  /* approximation */
                ret->ret = -EINVAL;
        } else if (argc == 0) {
                ret->ret = 0;
        } else if (streq(argv[0], "mesh"))
                ret->ret = sim_mesh_shell(m, argc, argv, &out);
        else {
                sim_shell_printf(&out, "%s: command not found\n", argv[0]);
                ret->ret = -ENOEXEC;
        }
        /* shell_mgmt_exec(): "o" and "ret" encoded in the response
         * buffer, after the 8-byte SMP header; what does not fit is
         * MGMT_ERR_EMSGSIZE and no output (about 24 bytes around it:
         * the map, "o", the string's head, "ret" and its value) */
        if (cfg->netbuf && out.len + 8u + 24u > cfg->netbuf) {
                dev_log(d, 1, "shell: %zu bytes of output do not fit the %" PRIu32 "-byte net_buf", out.len,
                        cfg->netbuf);
                free(out.buf);
                ret->mgmt_rc = SMP_MGMT_ERR_EMSGSIZE;
                return;
        }
        ret->out = out.buf;
        ret->out_len = out.len;
        ret->legacy_rc = cfg->legacy_rc;
        dev_log(d, 2, "shell: ret %d, %zu bytes printed", ret->ret, out.len);
}
