/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Frame decoding: walk a packet of concatenated frames, and feed the same
 * bytes to the reassembler in pieces whose sizes come from the input. */
#include <stddef.h>
#include <stdint.h>

#include "smpgw/smp-frame.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct smp_frame f;
        size_t off = 0;
        volatile uint8_t sink = 0;

        while (smp_packet_next(data, size, &off, &f) == 1)
                for (size_t i = 0; i < f.body_len; i++)
                        sink ^= f.body[i];

        if (size < 1)
                return 0;
        struct smp_reassembler *r;
        if (smp_reassembler_new(SMP_HEADER_SIZE + 512, &r) < 0)
                return 0;
        size_t piece = (size_t) (data[0] % 32) + 1;
        for (size_t pos = 1; pos < size; pos += piece) {
                (void) smp_reassembler_feed(r, data + pos, MIN(piece, size - pos));
                while (smp_reassembler_next(r, &f) == 1)
                        for (size_t i = 0; i < f.body_len; i++)
                                sink ^= f.body[i];
        }
        smp_reassembler_free(r);
        (void) sink;
        return 0;
}
