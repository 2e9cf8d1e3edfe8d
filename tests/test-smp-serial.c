/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Serial console framing tests.  Vectors come from the documentation
 * (Zephyr smp_transport.rst "SMP over console", protocol.md §6 example,
 * and the CRC-16/XMODEM check value from the CRC catalogue), not from our
 * encoder.
 */
#include <errno.h>

#include "smpgw/smp-serial.h"
#include "test-util.h"

/* protocol.md §6: v1 echo "hi", seq 0x42:
 *   frame 02 00 00 06 00 00 42 00 a1 61 64 62 68 69
 *   packet = 00 10 (len 14 + 2) || frame || 70 61 (CRC16)
 *   line   = 06 09 "ABACAAAGAABCAKFhZGJoaXBh" 0a */
static const char ECHO_V1_FRAME[] = "02 00 00 06 00 00 42 00 a1 61 64 62 68 69";
static const char ECHO_V1_LINE[] = "\x06\x09" "ABACAAAGAABCAKFhZGJoaXBh" "\n";

struct collected {
        uint8_t frames[8][4096];
        size_t lens[8];
        int n_frames;
        int drops[16];
        int n_drops;
        char console[1024];
        size_t console_len;
        int n_console;
};

static void on_packet(const uint8_t *frame, size_t len, void *userdata) {
        struct collected *c = userdata;
        ASSERT_TRUE(c->n_frames < 8 && len <= sizeof(c->frames[0]));
        memcpy(c->frames[c->n_frames], frame, len);
        c->lens[c->n_frames++] = len;
}

static void on_dropped(enum smp_serial_drop why, void *userdata) {
        struct collected *c = userdata;
        ASSERT_TRUE(c->n_drops < 16);
        ASSERT_TRUE(smp_serial_drop_to_string(why) != NULL);
        c->drops[c->n_drops++] = (int) why;
}

static void on_console(const char *text, size_t len, void *userdata) {
        struct collected *c = userdata;
        if (c->console_len + len + 1 < sizeof(c->console)) {
                memcpy(c->console + c->console_len, text, len);
                c->console_len += len;
                c->console[c->console_len++] = '|';
                c->console[c->console_len] = 0;
        }
        c->n_console++;
}

static const struct smp_serial_callbacks callbacks = {
        .packet = on_packet,
        .dropped = on_dropped,
        .console = on_console,
};

static void test_crc16_check_value(void) {
        /* CRC-16/XMODEM catalogue check value */
        ASSERT_EQ(smp_crc16_xmodem(0, "123456789", 9), 0x31c3);
        uint8_t frame[32];
        size_t n = test_hex(ECHO_V1_FRAME, frame, sizeof(frame));
        ASSERT_EQ(smp_crc16_xmodem(0, frame, n), 0x7061);
        /* incremental equals one-shot */
        ASSERT_EQ(smp_crc16_xmodem(smp_crc16_xmodem(0, frame, 5), frame + 5, n - 5), 0x7061);
}

static void test_encode_doc_vector(void) {
        uint8_t frame[32], out[256];
        size_t n = test_hex(ECHO_V1_FRAME, frame, sizeof(frame));
        size_t want = strlen(ECHO_V1_LINE);

        ASSERT_EQ(smp_serial_encoded_size(n, 0), want);
        ASSERT_EQ(smp_serial_encode(frame, n, 0, out, sizeof(out)), (int) want);
        ASSERT_MEMEQ(out, ECHO_V1_LINE, want);
        ASSERT_EQ(smp_serial_encode(frame, n, 0, out, want - 1), -ENOBUFS);
        ASSERT_EQ(smp_serial_encode(frame, n, 6, out, sizeof(out)), -EINVAL);
}

static void test_decode_doc_vector(void) {
        struct collected c = { 0 };
        struct smp_serial_decoder *d;
        uint8_t frame[32];
        size_t n = test_hex(ECHO_V1_FRAME, frame, sizeof(frame));

        ASSERT_OK(smp_serial_decoder_new(512, &callbacks, &c, &d));
        smp_serial_decoder_feed(d, (const uint8_t *) ECHO_V1_LINE, strlen(ECHO_V1_LINE));
        ASSERT_EQ(c.n_frames, 1);
        ASSERT_EQ(c.lens[0], n);
        ASSERT_MEMEQ(c.frames[0], frame, n);
        ASSERT_EQ(c.n_drops, 0);

        /* with CR LF line endings, one byte at a time */
        const char crlf[] = "\x06\x09" "ABACAAAGAABCAKFhZGJoaXBh" "\r\n";
        for (size_t i = 0; i < strlen(crlf); i++)
                smp_serial_decoder_feed(d, (const uint8_t *) crlf + i, 1);
        ASSERT_EQ(c.n_frames, 2);
        ASSERT_MEMEQ(c.frames[1], frame, n);
        smp_serial_decoder_free(d);
}

/* A frame long enough to need continuation lines: every line is at most
 * 127 bytes, starts with the right marker and carries whole base64 groups. */
static void test_long_frame_lines(void) {
        uint8_t frame[1000], out[2048];
        for (size_t i = 0; i < sizeof(frame); i++)
                frame[i] = (uint8_t) (i * 7 + 3);
        frame[2] = (uint8_t) ((sizeof(frame) - 8) >> 8);
        frame[3] = (uint8_t) (sizeof(frame) - 8);

        int len = smp_serial_encode(frame, sizeof(frame), 0, out, sizeof(out));
        ASSERT_TRUE(len > 0);
        ASSERT_EQ((size_t) len, smp_serial_encoded_size(sizeof(frame), 0));

        int lines = 0;
        for (int pos = 0; pos < len; lines++) {
                const uint8_t *nl = memchr(out + pos, '\n', (size_t) (len - pos));
                ASSERT_TRUE(nl != NULL);
                size_t line_len = (size_t) (nl - (out + pos)) + 1;
                ASSERT_TRUE(line_len <= SMP_SERIAL_LINE_MAX);
                ASSERT_EQ(out[pos], lines == 0 ? 0x06 : 0x04);
                ASSERT_EQ(out[pos + 1], lines == 0 ? 0x09 : 0x14);
                ASSERT_EQ((line_len - 3) % 4, 0);
                pos += (int) line_len;
        }
        /* 2 + 1000 + 2 bytes = 1340 base64 chars = 10 full lines of 124 + 1 of 100 */
        ASSERT_EQ(lines, 11);

        /* decode it back, interleaved with console text */
        struct collected c = { 0 };
        struct smp_serial_decoder *d;
        ASSERT_OK(smp_serial_decoder_new(1024, &callbacks, &c, &d));
        const char *log = "[00:00:01.000,000] <inf> app: hello\n";
        smp_serial_decoder_feed(d, (const uint8_t *) log, strlen(log));
        int pos = 0;
        for (int i = 0; pos < len; i++) {
                const uint8_t *nl = memchr(out + pos, '\n', (size_t) (len - pos));
                size_t line_len = (size_t) (nl - (out + pos)) + 1;
                smp_serial_decoder_feed(d, out + pos, line_len);
                if (i == 3)
                        smp_serial_decoder_feed(d, (const uint8_t *) log, strlen(log));
                pos += (int) line_len;
        }
        ASSERT_EQ(c.n_frames, 1);
        ASSERT_EQ(c.lens[0], sizeof(frame));
        ASSERT_MEMEQ(c.frames[0], frame, sizeof(frame));
        ASSERT_EQ(c.n_console, 2);
        ASSERT_EQ(c.n_drops, 0);

        /* the same frame with a receive limit one byte too small */
        struct collected c2 = { 0 };
        struct smp_serial_decoder *small;
        ASSERT_OK(smp_serial_decoder_new(sizeof(frame) - 1, &callbacks, &c2, &small));
        smp_serial_decoder_feed(small, out, (size_t) len);
        ASSERT_EQ(c2.n_frames, 0);
        ASSERT_EQ(c2.n_drops, 1);
        ASSERT_EQ(c2.drops[0], SMP_SERIAL_DROP_TOO_LARGE);
        smp_serial_decoder_free(small);
        smp_serial_decoder_free(d);
}

/* Console text on the same line before a start marker: Zephyr's log may
 * not have ended its line when the SMP answer goes out. */
static void test_text_before_marker(void) {
        struct collected c = { 0 };
        struct smp_serial_decoder *d;
        ASSERT_OK(smp_serial_decoder_new(512, &callbacks, &c, &d));
        const char line[] = "uart:~$ \x06\x09" "ABACAAAGAABCAKFhZGJoaXBh" "\n";
        smp_serial_decoder_feed(d, (const uint8_t *) line, strlen(line));
        ASSERT_EQ(c.n_frames, 1);
        ASSERT_STREQ(c.console, "uart:~$ |");
        smp_serial_decoder_free(d);
}

static void test_malformed(void) {
        struct collected c = { 0 };
        struct smp_serial_decoder *d;
        ASSERT_EQ(smp_serial_decoder_new(4, &callbacks, &c, &d), -EINVAL);
        ASSERT_OK(smp_serial_decoder_new(512, &callbacks, &c, &d));

        /* CRC: last base64 group changed (0x7061 -> 0x7062) */
        const char bad_crc[] = "\x06\x09" "ABACAAAGAABCAKFhZGJoaXBi" "\n";
        smp_serial_decoder_feed(d, (const uint8_t *) bad_crc, strlen(bad_crc));
        ASSERT_EQ(c.n_frames, 0);
        ASSERT_EQ(c.drops[c.n_drops - 1], SMP_SERIAL_DROP_BAD_CRC);

        /* character outside the alphabet */
        const char bad_char[] = "\x06\x09" "ABAC*AAGAABCAKFhZGJoaXBh" "\n";
        smp_serial_decoder_feed(d, (const uint8_t *) bad_char, strlen(bad_char));
        ASSERT_EQ(c.drops[c.n_drops - 1], SMP_SERIAL_DROP_BAD_BASE64);

        /* misplaced padding */
        const char bad_pad[] = "\x06\x09" "A=AC" "\n";
        smp_serial_decoder_feed(d, (const uint8_t *) bad_pad, strlen(bad_pad));
        ASSERT_EQ(c.drops[c.n_drops - 1], SMP_SERIAL_DROP_BAD_BASE64);

        /* length 4: too small for header + CRC ("AAQ=" = 00 04) */
        const char small_len[] = "\x06\x09" "AAQA" "\n";
        smp_serial_decoder_feed(d, (const uint8_t *) small_len, strlen(small_len));
        ASSERT_EQ(c.drops[c.n_drops - 1], SMP_SERIAL_DROP_BAD_LENGTH);

        /* a new start before the first packet completed */
        const char partial[] = "\x06\x09" "ABACAAAG" "\n";
        smp_serial_decoder_feed(d, (const uint8_t *) partial, strlen(partial));
        smp_serial_decoder_feed(d, (const uint8_t *) ECHO_V1_LINE, strlen(ECHO_V1_LINE));
        ASSERT_EQ(c.drops[c.n_drops - 1], SMP_SERIAL_DROP_INTERRUPTED);
        ASSERT_EQ(c.n_frames, 1);

        /* more data than announced: the doc packet with 3 bytes more */
        const char overrun[] = "\x06\x09" "ABACAAAGAABCAKFhZGJoaXBhAAAA" "\n";
        smp_serial_decoder_feed(d, (const uint8_t *) overrun, strlen(overrun));
        ASSERT_EQ(c.n_frames, 2); /* the packet completes before the extra group */

        /* a continuation with no start is ignored */
        int drops = c.n_drops;
        const char cont[] = "\x04\x14" "ABACAAAG" "\n";
        smp_serial_decoder_feed(d, (const uint8_t *) cont, strlen(cont));
        ASSERT_EQ(c.n_drops, drops);
        ASSERT_EQ(c.n_frames, 2);

        /* an over-long SMP line */
        uint8_t longline[SMP_SERIAL_RX_LINE_MAX + 100];
        longline[0] = 0x06;
        longline[1] = 0x09;
        memset(longline + 2, 'A', sizeof(longline) - 3);
        longline[sizeof(longline) - 1] = '\n';
        smp_serial_decoder_feed(d, longline, sizeof(longline));
        ASSERT_EQ(c.drops[c.n_drops - 1], SMP_SERIAL_DROP_LINE_TOO_LONG);

        /* and the decoder still works */
        smp_serial_decoder_feed(d, (const uint8_t *) ECHO_V1_LINE, strlen(ECHO_V1_LINE));
        ASSERT_EQ(c.n_frames, 3);
        smp_serial_decoder_free(d);
}

static void test_roundtrip_sizes(void) {
        /* every frame size across line boundaries, several line limits */
        static const size_t line_limits[] = { 0, 8, 31, 64, 127 };
        uint8_t frame[600], out[4096];
        for (size_t i = 0; i < sizeof(frame); i++)
                frame[i] = (uint8_t) (i ^ 0x5a);

        for (size_t li = 0; li < ELEMENTSOF(line_limits); li++)
                for (size_t n = 8; n <= sizeof(frame); n += (n < 300 ? 1 : 37)) {
                        struct collected c = { 0 };
                        struct smp_serial_decoder *d;
                        int len = smp_serial_encode(frame, n, line_limits[li], out, sizeof(out));
                        ASSERT_TRUE(len > 0);
                        ASSERT_OK(smp_serial_decoder_new(sizeof(frame), &callbacks, &c, &d));
                        smp_serial_decoder_feed(d, out, (size_t) len);
                        ASSERT_EQ(c.n_frames, 1);
                        ASSERT_EQ(c.lens[0], n);
                        ASSERT_MEMEQ(c.frames[0], frame, n);
                        smp_serial_decoder_free(d);
                }
}

TEST_MAIN(TEST(test_crc16_check_value),
          TEST(test_encode_doc_vector),
          TEST(test_decode_doc_vector),
          TEST(test_long_frame_lines),
          TEST(test_text_before_marker),
          TEST(test_malformed),
          TEST(test_roundtrip_sizes))
