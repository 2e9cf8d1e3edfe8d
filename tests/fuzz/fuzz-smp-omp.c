/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* OMP payloads from a CoAP peer: decode must never crash, and whatever it
 * accepts must survive encode + decode unchanged.  The same bytes are also
 * tried as an SMP frame to encode (the device side of the simulator). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smpgw/smp-frame.h"
#include "smpgw/smp-omp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t frame[SMP_FRAME_MAX], payload[SMP_FRAME_MAX + SMP_OMP_OVERHEAD], again[SMP_FRAME_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        int fn = smp_omp_decode(data, size, frame, sizeof(frame));
        if (fn >= 0) {
                int pn = smp_omp_encode(frame, (size_t) fn, payload, sizeof(payload));
                if (pn < 0)
                        abort();
                int fn2 = smp_omp_decode(payload, (size_t) pn, again, sizeof(again));
                if (fn2 != fn || memcmp(frame, again, (size_t) fn) != 0)
                        abort();
        }

        int pn = smp_omp_encode(data, size, payload, sizeof(payload));
        if (pn >= 0) {
                if ((size_t) pn > size - SMP_HEADER_SIZE + SMP_OMP_OVERHEAD)
                        abort();
                if (smp_omp_decode(payload, (size_t) pn, again, sizeof(again)) < 0)
                        abort();
        }
        return 0;
}
