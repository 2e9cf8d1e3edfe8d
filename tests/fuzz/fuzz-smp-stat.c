/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Stat group decoders, requests and responses, with re-encode round trips. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smpgw/smp-stat.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[70000];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct smp_cbor_error error;
        struct smp_cbor_writer w;
        struct smp_cbor_slice name, name2;

        if (smp_stat_read_req_decode(data, size, &name, &error) >= 0) {
                smp_cbor_writer_init(&w, out, sizeof(out));
                assert(smp_stat_read_req_encode(&w, name) == 0);
                assert(smp_stat_read_req_decode(out, w.len, &name2, &error) == 0);
                assert(name2.len == name.len);
        }

        struct smp_stat_read_rsp rd, rd2;
        if (smp_stat_read_rsp_decode(data, size, &rd, &error) >= 0) {
                smp_cbor_writer_init(&w, out, sizeof(out));
                w.indefinite = size & 1;
                assert(smp_stat_read_rsp_encode(&w, &rd) == 0);
                assert(smp_stat_read_rsp_decode(out, w.len, &rd2, &error) == 0);
                assert(rd2.n_fields == rd.n_fields);
                for (size_t i = 0; i < rd.n_fields; i++)
                        assert(rd2.fields[i].value == rd.fields[i].value);
                smp_stat_read_rsp_done(&rd2);
                smp_stat_read_rsp_done(&rd);
        }

        struct smp_stat_list_rsp ls, ls2;
        if (smp_stat_list_rsp_decode(data, size, &ls, &error) >= 0) {
                smp_cbor_writer_init(&w, out, sizeof(out));
                w.indefinite = size & 1;
                assert(smp_stat_list_rsp_encode(&w, &ls) == 0);
                assert(smp_stat_list_rsp_decode(out, w.len, &ls2, &error) == 0);
                assert(ls2.n_names == ls.n_names);
                smp_stat_list_rsp_done(&ls2);
                smp_stat_list_rsp_done(&ls);
        }
        return 0;
}
