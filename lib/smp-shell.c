/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shell management group (9) bodies and one-command runs on a session.
 * Shapes from Zephyr smp_group_9.rst and grp/shell_mgmt/src/shell_mgmt.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "smpgw/smp-frame.h"
#include "smpgw/smp-parse.h"
#include "smpgw/smp-shell.h"
#include "util.h"

int smp_shell_exec_req_encode(struct smp_cbor_writer *w, const struct smp_cbor_slice *argv, size_t argc) {
        if (!argv || argc == 0 || argc > SMP_SHELL_ARGV_MAX)
                return -EINVAL;
        for (size_t i = 0; i < argc; i++)
                if (!argv[i].ptr)
                        return -EINVAL;
        smp_cbor_put_map(w, 1);
        smp_cbor_put_text(w, "argv");
        smp_cbor_put_array(w, argc);
        for (size_t i = 0; i < argc; i++)
                smp_cbor_put_text_slice(w, argv[i]);
        smp_cbor_put_end(w);
        return smp_cbor_put_end(w);
}

int smp_shell_exec_req_decode(const uint8_t *body, size_t len, struct smp_shell_exec_req *ret,
                              struct smp_cbor_error *error) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        _cleanup_free_ struct smp_cbor_slice *argv = NULL;
        struct smp_cbor_doc doc;
        struct smp_cbor_iter it;
        uint32_t list, e;
        size_t n = 0;
        int r;

        r = smp_body_parse(body, len, false, error, &items, &doc);
        if (r < 0)
                return r;
        r = smp_cbor_map_get_array(&doc, SMP_CBOR_ROOT, "argv", &list);
        if (r < 0)
                return r;
        if (doc.items[list].count > SMP_SHELL_ARGV_MAX)
                return smp_cbor_doc_fail(&doc, -E2BIG, doc.items[list].offset,
                                         "field 'argv': more than %u arguments", SMP_SHELL_ARGV_MAX);
        if (doc.items[list].count > 0) {
                argv = calloc(doc.items[list].count, sizeof(*argv));
                if (!argv)
                        return smp_cbor_doc_fail(&doc, -ENOMEM, 0, "out of memory");
        }
        smp_cbor_iter_init(&doc, list, &it);
        while (smp_cbor_iter_next(&doc, &it, &e)) {
                r = smp_cbor_item_text(&doc, e, "argv[]", &argv[n]);
                if (r < 0)
                        return r;
                n++;
        }
        *ret = (struct smp_shell_exec_req) { .argv = TAKE_PTR(argv), .argc = n };
        return 0;
}

void smp_shell_exec_req_done(struct smp_shell_exec_req *req) {
        if (!req)
                return;
        free(req->argv);
        *req = (struct smp_shell_exec_req) { 0 };
}

size_t smp_shell_line_len(const struct smp_cbor_slice *argv, size_t argc) {
        size_t n = 0;

        if (!argv)
                return 0;
        for (size_t i = 0; i < argc; i++)
                n += argv[i].len + (i > 0);
        return n;
}

bool smp_shell_line_fits(size_t line_len, size_t cmd_buf_size) {
        if (cmd_buf_size == 0)
                cmd_buf_size = SMP_SHELL_CMD_BUFF_SIZE_DEFAULT;
        return line_len < cmd_buf_size;
}

int smp_shell_exec_rsp_encode(struct smp_cbor_writer *w, const struct smp_shell_exec_rsp *rsp) {
        if (!rsp || (!rsp->output.ptr && rsp->output.len > 0))
                return -EINVAL;
        smp_cbor_put_map(w, 2);
        smp_cbor_put_text(w, "o");
        smp_cbor_put_text_slice(w, rsp->output.ptr ? rsp->output : SMP_CBOR_SLICE_LIT(""));
        smp_cbor_put_text(w, rsp->legacy_rc ? "rc" : "ret");
        smp_cbor_put_int(w, rsp->ret);
        return smp_cbor_put_end(w);
}

int smp_shell_exec_rsp_decode(const uint8_t *body, size_t len, struct smp_shell_exec_rsp *ret,
                              struct smp_cbor_error *error) {
        _cleanup_free_ struct smp_cbor_item *items = NULL;
        struct smp_shell_exec_rsp rsp = { 0 };
        struct smp_cbor_doc doc;
        struct smp_status status;
        int64_t v;
        int r;

        /* Not smp_body_parse(response = true): a legacy "rc" next to "o"
         * is the command's result, not an SMP error. */
        r = smp_body_parse(body, len, false, error, &items, &doc);
        if (r < 0)
                return r;
        r = smp_status_from_doc(&doc, SMP_CBOR_ROOT, &status);
        if (r < 0)
                return r;
        r = smp_cbor_map_opt_text(&doc, SMP_CBOR_ROOT, "o", &rsp.output);
        if (r < 0)
                return r;
        bool has_output = r > 0;

        if ((status.has_err && status.err_rc != 0) || (!has_output && smp_status_failed(&status)))
                return smp_status_check(&doc, SMP_CBOR_ROOT);
        if (!has_output)
                return smp_cbor_doc_fail(&doc, -ENOENT, 0, "field 'o': missing");

        r = smp_cbor_map_opt_int(&doc, SMP_CBOR_ROOT, "ret", &v);
        if (r < 0)
                return r;
        if (r > 0) {
                rsp.ret = v;
                rsp.has_ret = true;
                /* An "rc" beside "ret" is the SMP layer's own result. */
                if (status.has_rc && status.rc != 0)
                        return smp_status_check(&doc, SMP_CBOR_ROOT);
        } else if (status.has_rc) {
                rsp.ret = status.rc;
                rsp.has_ret = true;
                rsp.legacy_rc = true;
        }
        *ret = rsp;
        return 0;
}

int smp_shell_split(const char *line, char ***ret_argv, size_t *ret_argc) {
        char **argv = NULL;
        size_t n = 0;

        if (!line || !ret_argv)
                return -EINVAL;
        for (const char *p = line;;) {
                while (*p == ' ' || *p == '\t')
                        p++;
                if (!*p)
                        break;
                const char *start = p;
                while (*p && *p != ' ' && *p != '\t')
                        p++;
                if (n >= SMP_SHELL_ARGV_MAX) {
                        smp_strv_free(argv);
                        return -E2BIG;
                }
                char **grown = realloc(argv, (n + 2) * sizeof(*argv));
                if (!grown) {
                        smp_strv_free(argv);
                        return -ENOMEM;
                }
                argv = grown;
                argv[n] = strndup(start, (size_t) (p - start));
                if (!argv[n]) {
                        smp_strv_free(argv);
                        return -ENOMEM;
                }
                argv[++n] = NULL;
        }
        if (n == 0)
                return -EINVAL;
        *ret_argv = argv;
        if (ret_argc)
                *ret_argc = n;
        return 0;
}

/* ------------------------------------------------------------------ */
/* One command on a session                                            */

struct smp_shell_exec {
        struct smp_session *session;
        struct smp_request *req;
        smp_shell_done_fn done;
        void *userdata;
        bool in_callback;
};

void smp_shell_exec_cancel(struct smp_shell_exec *x) {
        if (!x || x->in_callback)
                return;
        smp_request_cancel(x->req);
        free(x);
}

struct smp_session *smp_shell_exec_get_session(const struct smp_shell_exec *x) {
        return x ? x->session : NULL;
}

static void on_exec_answer(struct smp_session *s, int error, const struct smp_header *hdr, const uint8_t *body,
                           size_t len, void *userdata) {
        struct smp_shell_exec *x = userdata;
        struct smp_shell_result result = { .error = error };
        _cleanup_free_ char *copy = NULL;

        x->req = NULL;
        if (error >= 0) {
                struct smp_shell_exec_rsp rsp;
                int r = smp_shell_exec_rsp_decode(body, len, &rsp, NULL);
                if (r == -EREMOTEIO)
                        (void) smp_status_decode(body, len, &result.status, NULL);
                if (r < 0)
                        result.error = r;
                else {
                        copy = malloc(rsp.output.len + 1);
                        if (!copy)
                                result.error = -ENOMEM;
                        else {
                                if (rsp.output.len)
                                        memcpy(copy, rsp.output.ptr, rsp.output.len);
                                copy[rsp.output.len] = 0;
                                result.output = copy;
                                result.output_len = rsp.output.len;
                                result.ret = rsp.ret;
                                result.legacy_rc = rsp.legacy_rc;
                        }
                }
        }
        if (!result.output)
                result.output = "";
        x->in_callback = true;
        if (x->done)
                x->done(x, &result, x->userdata);
        free(x);
}

int smp_shell_exec_start(struct smp_session *s, const char *const *argv, size_t argc,
                         const struct smp_shell_exec_params *params, smp_shell_done_fn done, void *userdata,
                         struct smp_shell_exec **ret) {
        const struct smp_shell_exec_params defaults = { 0 };
        struct smp_cbor_slice slices[SMP_SHELL_ARGV_MAX];
        _cleanup_free_ uint8_t *body = NULL;
        struct smp_cbor_writer w;
        size_t cap = 16;
        int r;

        if (!s || !argv || argc == 0 || argc > SMP_SHELL_ARGV_MAX)
                return -EINVAL;
        if (!params)
                params = &defaults;
        for (size_t i = 0; i < argc; i++) {
                if (!argv[i])
                        return -EINVAL;
                slices[i] = smp_cbor_slice_str(argv[i]);
                cap += smp_cbor_text_size(slices[i].len);
        }
        if (!smp_shell_line_fits(smp_shell_line_len(slices, argc), params->cmd_buf_size))
                return -E2BIG;

        body = malloc(cap);
        if (!body)
                return -ENOMEM;
        smp_cbor_writer_init(&w, body, cap);
        r = smp_shell_exec_req_encode(&w, slices, argc);
        if (r < 0)
                return r;
        r = smp_cbor_writer_finish(&w);
        if (r < 0)
                return r;

        struct smp_shell_exec *x = calloc(1, sizeof(*x));
        if (!x)
                return -ENOMEM;
        *x = (struct smp_shell_exec) { .session = s, .done = done, .userdata = userdata };
        const struct smp_request_params rp = {
                .op = SMP_OP_WRITE,
                .group = SMP_GROUP_SHELL,
                .id = SMP_SHELL_CMD_EXEC,
                .body = body,
                .body_len = (size_t) r,
                .timeout_usec = params->timeout_usec,
                .idempotent = params->idempotent,
        };
        r = smp_session_send(s, &rp, on_exec_answer, x, &x->req);
        if (r < 0) {
                free(x);
                return r;
        }
        if (ret)
                *ret = x;
        return 0;
}

int smp_shell_exec_line(struct smp_session *s, const char *line, const struct smp_shell_exec_params *params,
                        smp_shell_done_fn done, void *userdata, struct smp_shell_exec **ret) {
        char **argv = NULL;
        size_t argc;
        int r;

        r = smp_shell_split(line, &argv, &argc);
        if (r < 0)
                return r;
        r = smp_shell_exec_start(s, (const char *const *) argv, argc, params, done, userdata, ret);
        smp_strv_free(argv);
        return r;
}
