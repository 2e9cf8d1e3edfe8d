/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Serial deframer: arbitrary bytes off the line, in input-sized pieces;
 * every packet it accepts must re-encode and decode to itself. */
#include <stdlib.h>
#include <string.h>

#include "smpgw/smp-serial.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct state {
        int packets;
};

static void roundtrip_packet(const uint8_t *frame, size_t len, void *userdata);

static void inner_packet(const uint8_t *frame, size_t len, void *userdata) {
        const uint8_t *want = userdata;
        if (memcmp(frame, want, len) != 0)
                abort();
}

static void roundtrip_packet(const uint8_t *frame, size_t len, void *userdata) {
        struct state *s = userdata;
        s->packets++;

        size_t need = smp_serial_encoded_size(len, 0);
        uint8_t *out = malloc(need);
        if (!out)
                return;
        if (smp_serial_encode(frame, len, 0, out, need) != (int) need)
                abort();

        struct smp_serial_decoder *d;
        const struct smp_serial_callbacks cb = { .packet = inner_packet };
        if (smp_serial_decoder_new(len < 8 ? 8 : len, &cb, (void *) frame, &d) == 0) {
                smp_serial_decoder_feed(d, out, need);
                smp_serial_decoder_free(d);
        }
        free(out);
}

static void dropped(enum smp_serial_drop why, void *userdata) {
        (void) smp_serial_drop_to_string(why);
}

static void console(const char *text, size_t len, void *userdata) {
        volatile char sink = 0;
        for (size_t i = 0; i < len; i++)
                sink ^= text[i];
        (void) sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct state s = { 0 };
        const struct smp_serial_callbacks cb = {
                .packet = roundtrip_packet,
                .dropped = dropped,
                .console = console,
        };
        struct smp_serial_decoder *d;

        if (size < 1)
                return 0;
        if (smp_serial_decoder_new(2048, &cb, &s, &d) < 0)
                return 0;
        size_t piece = (size_t) (data[0] % 64) + 1;
        for (size_t pos = 1; pos < size; pos += piece)
                smp_serial_decoder_feed(d, data + pos, MIN(piece, size - pos));
        smp_serial_decoder_free(d);
        return 0;
}
