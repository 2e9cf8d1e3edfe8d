/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shell group bodies on untrusted input; what decodes is encoded again
 * (both container styles) and must decode to the same values. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smpgw/smp-shell.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[70000];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct smp_cbor_writer w;

        struct smp_shell_exec_req req, req2;
        if (smp_shell_exec_req_decode(data, size, &req, NULL) == 0) {
                assert(req.argc <= SMP_SHELL_ARGV_MAX);
                if (req.argc > 0) {
                        smp_cbor_writer_init(&w, out, sizeof(out));
                        w.indefinite = size & 1;
                        assert(smp_shell_exec_req_encode(&w, req.argv, req.argc) == 0);
                        assert(smp_shell_exec_req_decode(out, w.len, &req2, NULL) == 0);
                        assert(req2.argc == req.argc);
                        assert(smp_shell_line_len(req2.argv, req2.argc) == smp_shell_line_len(req.argv, req.argc));
                        smp_shell_exec_req_done(&req2);
                }
                smp_shell_exec_req_done(&req);
        }

        struct smp_shell_exec_rsp rsp, rsp2;
        if (smp_shell_exec_rsp_decode(data, size, &rsp, NULL) == 0) {
                for (int indef = 0; indef <= 1; indef++) {
                        smp_cbor_writer_init(&w, out, sizeof(out));
                        w.indefinite = indef;
                        assert(smp_shell_exec_rsp_encode(&w, &rsp) == 0);
                        assert(smp_shell_exec_rsp_decode(out, w.len, &rsp2, NULL) == 0);
                        assert(rsp2.output.len == rsp.output.len);
                        assert(rsp2.ret == rsp.ret && rsp2.legacy_rc == rsp.legacy_rc);
                }
        }
        return 0;
}
