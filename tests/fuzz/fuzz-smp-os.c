/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* OS group decoders, requests and responses, on untrusted bodies.  What
 * decodes is encoded again (both container styles) and must decode to the
 * same values. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "smpgw/smp-os.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[70000];

static void writer(struct smp_cbor_writer *w, bool indef) {
        smp_cbor_writer_init(w, out, sizeof(out));
        w->indefinite = indef;
}

static void text_roundtrip(const uint8_t *body, size_t len,
                           int (*dec)(const uint8_t *, size_t, struct smp_cbor_slice *, struct smp_cbor_error *),
                           int (*enc)(struct smp_cbor_writer *, struct smp_cbor_slice)) {
        struct smp_cbor_slice s, back;
        struct smp_cbor_writer w;

        if (dec(body, len, &s, NULL) < 0)
                return;
        for (int indef = 0; indef <= 1; indef++) {
                writer(&w, indef);
                if (enc(&w, s) < 0)
                        continue;
                if (!smp_cbor_slice_present(s))
                        continue;
                assert(dec(out, w.len, &back, NULL) == 0);
                assert(back.len == s.len && (s.len == 0 || memcmp(back.ptr, s.ptr, s.len) == 0));
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct smp_cbor_error error;
        struct smp_cbor_writer w;

        text_roundtrip(data, size, smp_os_echo_req_decode, smp_os_echo_req_encode);
        text_roundtrip(data, size, smp_os_echo_rsp_decode, smp_os_echo_rsp_encode);
        text_roundtrip(data, size, smp_os_datetime_req_decode, smp_os_datetime_encode);
        text_roundtrip(data, size, smp_os_datetime_rsp_decode, smp_os_datetime_encode);
        text_roundtrip(data, size, smp_os_info_req_decode, smp_os_info_req_encode);
        text_roundtrip(data, size, smp_os_info_rsp_decode, smp_os_info_rsp_encode);
        text_roundtrip(data, size, smp_os_bootloader_info_req_decode, smp_os_bootloader_info_req_encode);

        struct smp_os_taskstat_rsp ts, ts2;
        if (smp_os_taskstat_rsp_decode(data, size, &ts, &error) >= 0) {
                for (int indef = 0; indef <= 1; indef++) {
                        writer(&w, indef);
                        if (smp_os_taskstat_rsp_encode(&w, &ts) < 0)
                                continue;
                        assert(smp_os_taskstat_rsp_decode(out, w.len, &ts2, &error) == 0);
                        assert(ts2.n_tasks == ts.n_tasks);
                        for (size_t i = 0; i < ts.n_tasks; i++)
                                assert(ts2.tasks[i].prio == ts.tasks[i].prio &&
                                       ts2.tasks[i].next_checkin == ts.tasks[i].next_checkin);
                        smp_os_taskstat_rsp_done(&ts2);
                }
                smp_os_taskstat_rsp_done(&ts);
        }

        struct smp_os_reset_req rr, rr2;
        if (smp_os_reset_req_decode(data, size, &rr, &error) >= 0) {
                writer(&w, size & 1);
                assert(smp_os_reset_req_encode(&w, &rr) == 0);
                assert(smp_os_reset_req_decode(out, w.len, &rr2, &error) == 0);
                assert(rr2.force == rr.force && rr2.has_boot_mode == rr.has_boot_mode &&
                       rr2.boot_mode == rr.boot_mode);
        }

        struct smp_os_params_rsp pr, pr2;
        if (smp_os_params_rsp_decode(data, size, &pr, &error) >= 0) {
                writer(&w, size & 1);
                assert(smp_os_params_rsp_encode(&w, &pr) == 0);
                assert(smp_os_params_rsp_decode(out, w.len, &pr2, &error) == 0);
                assert(pr2.buf_size == pr.buf_size && pr2.buf_count == pr.buf_count);
        }

        struct smp_os_bootloader_info_rsp bl, bl2;
        if (smp_os_bootloader_info_rsp_decode(data, size, &bl, &error) >= 0) {
                writer(&w, size & 1);
                assert(smp_os_bootloader_info_rsp_encode(&w, &bl) == 0);
                assert(smp_os_bootloader_info_rsp_decode(out, w.len, &bl2, &error) == 0);
                assert(bl2.has_mode == bl.has_mode && bl2.mode == bl.mode &&
                       bl2.no_downgrade == bl.no_downgrade);
        }
        return 0;
}
